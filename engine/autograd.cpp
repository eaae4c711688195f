// Reverse-mode differentiation over the dynamic tape.
//
// Each op output holds the Node that made it; a Node holds its inputs. backward() orders the
// nodes reachable from the root topologically (depth-first, post-order), then visits them from
// the root down, so every node runs once, after all of its consumers have added their
// gradient contributions (fan-out sums, case B31).
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "engine/ops.h"
#include "engine/profiler.h"
#include "engine/tensor.h"

namespace ss {

namespace {
thread_local bool t_grad_enabled = true;

bool needs_grad(const Tensor& t) {
  return t.defined() && (t.requires_grad() || !t.is_leaf());
}

// Node order such that every node comes after all nodes that consume its output.
// Holds shared pointers: freeing a node's inputs must not destroy nodes still to be visited.
std::vector<std::shared_ptr<Node>> topological_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen{root.get()};
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (node->released)
      throw std::runtime_error("[backward] the graph through op '" + node->op +
                               "' was already freed by an earlier backward(); recompute the "
                               "forward pass, or pass retain_graph to keep it");
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && !in.is_leaf() && seen.insert(in.grad_fn().get()).second)
        stack.push_back({in.grad_fn(), 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

void accumulate(Tensor& slot, const Tensor& g) {
  slot = slot.defined() ? add(slot, g) : g;
}

void accumulate_leaf(const Tensor& leaf, const Tensor& g) {
  Tensor cur = leaf.grad();
  leaf.impl()->grad = (cur.defined() ? add(cur, g) : g.detach()).impl_ptr();
}
}  // namespace

bool grad_enabled() {
  return t_grad_enabled;
}

NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) {
  t_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  t_grad_enabled = prev_;
}

Tensor record(const char* op, Tensor out, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!t_grad_enabled) return out;
  bool any = false;
  for (const Tensor& t : inputs) any = any || needs_grad(t);
  if (!any) return out;
  // The node keeps only what the graph walk needs of each input: its shape, dtype and device,
  // and the node that made it (a non-leaf) or the leaf itself (whose .grad backward fills).
  // Input values a derivative needs are captured by the op's closure, and only those: holding
  // every input here would keep, e.g., both operands of each residual add alive until backward.
  for (Tensor& in : inputs) {
    if (!in.defined() || (in.is_leaf() && in.requires_grad())) continue;
    auto edge = std::make_shared<TensorImpl>();
    edge->shape = in.shape();
    edge->dtype = in.dtype();
    edge->device = in.device();
    edge->requires_grad = in.requires_grad();
    edge->grad_fn = in.grad_fn();
    in = Tensor(std::move(edge));
  }
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

void run_backward(const Tensor& root, const Tensor& dout, bool retain_graph) {
  if (!needs_grad(root))
    throw std::invalid_argument("[backward] tensor " + root.str() +
                                " does not require grad and has no autograd history");
  if (dout.shape() != root.shape() || dout.dtype() != root.dtype())
    throw std::invalid_argument("[backward] gradient " + dout.str() + " does not match tensor " +
                                root.str());
  NoGradGuard no_grad;
  if (root.is_leaf()) {
    accumulate_leaf(root, dout);
    return;
  }

  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = dout;
  for (const std::shared_ptr<Node>& node_ptr : topological_order(root.grad_fn())) {
    Node* node = node_ptr.get();
    auto it = grads.find(node);
    if (it == grads.end()) continue;  // no gradient flows into this node
    Tensor g = std::move(it->second);
    grads.erase(it);

    const bool timed = prof::enabled();
    const double t0 = timed ? prof::now_seconds() : 0;
    std::vector<Tensor> dinps;
    {
      prof::BackwardRegion region;
      dinps = node->backward(g);
    }
    if (timed) prof::add(node->op.c_str(), true, prof::now_seconds() - t0);
    if (dinps.size() != node->inputs.size())
      throw std::logic_error("[backward] op '" + node->op + "' returned " +
                             std::to_string(dinps.size()) + " gradients for " +
                             std::to_string(node->inputs.size()) + " inputs");
    // Summing gradients at fan-outs (B31) is backward work: timed as its own row, not as the
    // forward adds it calls.
    const double t1 = timed ? prof::now_seconds() : 0;
    prof::BackwardRegion sums_region;
    for (size_t i = 0; i < dinps.size(); ++i) {
      const Tensor& in = node->inputs[i];
      if (!needs_grad(in) || !dinps[i].defined()) continue;
      if (dinps[i].shape() != in.shape())
        throw std::logic_error("[backward] op '" + node->op + "' gave gradient " + dinps[i].str() +
                               " for input " + in.str());
      if (in.is_leaf())
        accumulate_leaf(in, dinps[i]);
      else
        accumulate(grads[in.grad_fn().get()], dinps[i]);
    }
    if (timed) prof::add("gradient sums", true, prof::now_seconds() - t1);
    if (!retain_graph) {
      node->backward = nullptr;
      node->inputs.clear();
      node->released = true;
    }
  }
}

}  // namespace ss
