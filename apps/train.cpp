#include "apps/train.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "data/augment.h"
#include "engine/backend.h"
#include "engine/cpu/blas_setup.h"
#include "engine/cpu/thread_pool.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/schedule.h"
#include "engine/serialize.h"
#include "losses/loss.h"

namespace fs = std::filesystem;

namespace ss {

namespace {

std::vector<std::string> split_list(const std::string& s, const std::string& dir) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(fs::path(item).is_absolute() ? item : dir + "/" + item);
  return out;
}

MemoryDataset first_n(const MemoryDataset& ds, int64_t n) {
  if (n <= 0 || n >= ds.size()) return ds;
  MemoryDataset out(ds.name(), ds.channels(), ds.height(), ds.width(), ds.num_classes());
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) out.push(ds.image(i), ds.label(i));
  out.set_class_names(ds.class_names());
  out.set_stats(ds.mean(), ds.std());
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

Datasets load_datasets(const Config& cfg) {
  const std::string kind = cfg.get_string("data.dataset");
  std::string path = cfg.get_string("data.path");
  Datasets d;
  if (kind == "fashion-mnist" || kind == "mnist") {
    if (path.empty()) path = kind == "mnist" ? "/usr/share/datasets/mnist" : kFashionMnistDir;
    d.train = kind == "mnist" ? load_mnist(path, true) : load_fashion_mnist(path, true);
    d.heldout = kind == "mnist" ? load_mnist(path, false) : load_fashion_mnist(path, false);
  } else if (kind == "cifar10" || kind == "cifar100") {
    if (path.empty())
      throw std::invalid_argument(
          "[config] data.path must name the CIFAR folder (see "
          "scripts/get_cifar10.sh)");
    CifarOptions co;
    co.kind = kind == "cifar10" ? CifarKind::cifar10 : CifarKind::cifar100;
    co.coarse = cfg.get_bool("data.coarse_labels");
    const std::string tf = cfg.get_string("data.train_files"),
                      ef = cfg.get_string("data.eval_files");
    d.train = tf.empty() ? load_cifar(path, true, co) : load_cifar(split_list(tf, path), co);
    d.heldout = ef.empty() ? load_cifar(path, false, co) : load_cifar(split_list(ef, path), co);
  } else {
    if (path.empty()) throw std::invalid_argument("[config] data.path must name the image folder");
    const int s = int(cfg.get_int("data.image_size"));
    MemoryDataset all = load_image_folder(path, s, s);
    // Every tenth image is held out.
    d.train = MemoryDataset(all.name(), all.channels(), s, s, all.num_classes());
    d.heldout = MemoryDataset(all.name(), all.channels(), s, s, all.num_classes());
    for (int64_t i = 0; i < all.size(); ++i)
      (i % 10 == 9 ? d.heldout : d.train).push(all.image(i), all.label(i));
    d.train.set_stats(all.mean(), all.std());
    d.heldout.set_stats(all.mean(), all.std());
    d.train.set_class_names(all.class_names());
    d.heldout.set_class_names(all.class_names());
  }
  d.train = first_n(d.train, cfg.get_int("data.train_limit"));
  d.heldout = first_n(d.heldout, cfg.get_int("data.eval_limit"));
  // Held-out images are normalised with the training statistics.
  d.heldout.set_stats(d.train.mean(), d.train.std());
  return d;
}

std::shared_ptr<SslModel> build_model(const Config& cfg, int64_t in_channels) {
  const uint64_t seed = uint64_t(cfg.get_int("run.seed"));
  ResNetConfig rc = encoder_config(cfg.get_string("model.encoder"), in_channels, seed);
  rc.stem_stride = cfg.get_int("model.stem_stride");
  auto encoder = std::make_shared<ResNet>(rc);
  auto head = std::make_shared<ProjectionHead>(
      encoder->feature_dim(), cfg.get_int("model.head_hidden"), cfg.get_int("model.head_out"),
      cfg.get_bool("model.head_bn"), seed);
  return std::make_shared<SslModel>(encoder, head);
}

namespace {

std::unique_ptr<Optimizer> build_optimizer(const Config& cfg, const SslModel& model) {
  const double wd = cfg.get_double("optim.weight_decay");
  std::vector<ParamGroup> groups;
  if (cfg.get_bool("optim.exclude_bn_bias"))
    groups = split_decay_groups(model, wd);
  else
    groups.push_back(single_group(model, wd));
  OptimizerConfig oc;
  oc.name = cfg.get_string("optim.name");
  oc.lr = cfg.get_double("optim.lr");
  oc.momentum = cfg.get_double("optim.momentum");
  oc.beta1 = cfg.get_double("optim.momentum");
  oc.nesterov = cfg.get_bool("optim.nesterov");
  oc.trust_coefficient = cfg.get_double("optim.eta");
  return make_optimizer(oc, std::move(groups));
}

double base_lr(const Config& cfg) {
  const double lr = cfg.get_double("optim.lr");
  return cfg.get_bool("optim.scale_lr") ? lr * double(cfg.get_int("data.batch_size")) / 256.0 : lr;
}

void save_checkpoint(const std::string& path, const SslModel& model, const Optimizer& opt,
                     int64_t epoch, int64_t step, const Config& cfg) {
  std::map<std::string, Tensor> t;
  for (auto& [k, v] : model.state_dict()) t["model." + k] = v;
  for (auto& [k, v] : opt.state_dict()) t["optim." + k] = v;
  // Every random draw derives from (run.seed, epoch, index, view): the seed and the epoch are
  // the whole random state of a run.
  save_tensors(path, t,
               {{"format", "selfsup"},
                {"epoch", std::to_string(epoch)},
                {"global_step", std::to_string(step)},
                {"rng_seed", std::to_string(cfg.get_int("run.seed"))},
                {"config", cfg.to_toml()}});
}

struct Checkpoint {
  int64_t epoch = -1, step = 0;
};

Checkpoint load_checkpoint(const std::string& path, SslModel& model, Optimizer* opt) {
  LoadedTensors lt = load_tensors(path);
  std::map<std::string, Tensor> m, o;
  for (auto& [k, v] : lt.tensors) {
    if (k.rfind("model.", 0) == 0) m[k.substr(6)] = v;
    if (k.rfind("optim.", 0) == 0) o[k.substr(6)] = v;
  }
  try {
    model.load_state_dict(m, true);
    if (opt) opt->load_state_dict(o);
  } catch (const std::exception& e) {
    // Name the file: the model was built from the run's config.toml, the weights come from here.
    throw std::runtime_error(
        "[checkpoint] " + path +
        " does not fit the model built from the run's config.toml: " + e.what());
  }
  Checkpoint c;
  try {
    c.epoch = std::stoll(lt.metadata.at("epoch"));
    c.step = std::stoll(lt.metadata.at("global_step"));
  } catch (const std::exception&) {
    throw std::runtime_error("[checkpoint] " + path + " lacks its epoch / global_step metadata");
  }
  return c;
}

}  // namespace

std::shared_ptr<SslModel> load_run_model(const std::string& run_dir, Config& cfg,
                                         int64_t in_channels) {
  cfg.load_file(run_dir + "/config.toml");
  cfg.validate();
  auto model = build_model(cfg, in_channels);
  load_checkpoint(run_dir + "/checkpoint.safetensors", *model, nullptr);
  return model;
}

EvalSummary evaluate_model(SslModel& model, const Config& cfg, const Datasets& data, RunLog* log,
                           const FeatureSet* bank_in, const FeatureSet* test_in) {
  const Device dev = cfg.get_string("run.device") == "cuda" ? Device::cuda : Device::cpu;
  const bool head = cfg.get_string("eval.features") == "head";
  model.eval();
  EncodeFn enc = [&](const Tensor& x) { return head ? model.forward(x) : model.features(x); };
  const int64_t bs = 512;
  const FeatureSet bank =
      bank_in ? *bank_in
              : extract_features(data.train, enc, cfg.get_int("eval.bank_limit"), bs, dev);
  const FeatureSet test = test_in ? *test_in : extract_features(data.heldout, enc, 0, bs, dev);
  EvalSummary s;
  s.knn = knn_evaluate(bank, test, cfg.get_int("eval.knn_k"), cfg.get_double("eval.knn_t"));
  if (cfg.get_int("eval.linear_epochs") > 0) {
    LinearProbeOptions lp;
    lp.epochs = cfg.get_int("eval.linear_epochs");
    lp.lr = cfg.get_double("eval.linear_lr");
    lp.seed = uint64_t(cfg.get_int("run.seed"));
    s.linear_top1 = linear_probe(bank, test, lp);
  }
  // Alignment over two augmented views of held-out images, uniformity of their clean features.
  LoaderOptions lo;
  lo.batch_size = std::min<int64_t>(1024, data.heldout.size());
  lo.views = 2;
  lo.shuffle = false;
  lo.seed = uint64_t(cfg.get_int("run.seed")) + 1;
  Loader views(data.heldout, augment_preset(cfg.get_string("data.augment"), data.heldout), lo);
  std::vector<int64_t> idx(size_t(lo.batch_size));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
  Batch b;
  views.make_batch(idx, 0, 0, b);
  {
    NoGradGuard ng;
    Tensor x = Tensor::from_buffer(b.images.data(), {2 * b.N, b.C, b.H, b.W}, DType::f32, dev);
    Tensor f = enc(x).to(Device::cpu);
    s.align = alignment_metric(f.slice(0, b.N), f.slice(b.N, 2 * b.N));
    s.unif =
        uniformity_metric(test.features.slice(0, std::min<int64_t>(2048, test.features.size(0))));
  }
  if (log)
    log->line("eval: knn top1 " + fmt("%.4f", s.knn.top1) + " top5 " + fmt("%.4f", s.knn.top5) +
              (!std::isnan(s.linear_top1) ? " | linear top1 " + fmt("%.4f", s.linear_top1) : "") +
              " | align " + fmt("%.4f", s.align) + " unif " + fmt("%.4f", s.unif));
  return s;
}

void check_run_setup(const Config& cfg, const std::vector<std::string>& losses) {
  // Each loss that will run gets the parameters it will train with; every other [loss.<name>]
  // table must still name a registered loss and hold only its parameters.
  std::set<std::string> tables;
  for (const auto& [key, value] : cfg.values()) {
    if (key.rfind("loss.", 0) != 0) continue;
    const size_t dot = key.find('.', 5);
    if (dot != std::string::npos) tables.insert(key.substr(5, dot - 5));
  }
  auto check_loss = [](const std::string& name, const LossParams& params,
                       const std::string& where) {
    try {
      make_loss(name, params);
    } catch (const std::exception& e) {
      throw std::invalid_argument("[config] " + where + ": " + e.what());
    }
  };
  for (const std::string& l : losses) check_loss(l, cfg.loss_params(l), "loss '" + l + "'");
  for (const std::string& t : tables) {
    if (std::find(losses.begin(), losses.end(), t) != losses.end()) continue;
    LossParams own;
    for (const auto& [key, value] : cfg.values())
      if (key.rfind("loss." + t + ".", 0) == 0) own[key.substr(6 + t.size())] = cfg.get_double(key);
    check_loss(t, own, "table [loss." + t + "]");
  }

  encoder_config(cfg.get_string("model.encoder"), 1, 0);  // throws for an unknown name
  const std::vector<std::string> presets = augment_preset_names();
  if (std::find(presets.begin(), presets.end(), cfg.get_string("data.augment")) == presets.end()) {
    std::string list;
    for (const std::string& n : presets) list += (list.empty() ? "" : ", ") + n;
    throw std::invalid_argument("[config] key 'data.augment' = \"" +
                                cfg.get_string("data.augment") +
                                "\" is not a preset (known: " + list + ")");
  }
  if (cfg.get_string("run.device") == "cuda" && !has_backend(Device::cuda))
    throw std::invalid_argument(
        "[config] key 'run.device' = \"cuda\" but this build or machine has no CUDA device");
}

Config resolve_paths(Config cfg) {
  // The run directory must work from any folder: store the dataset path as an absolute one.
  const std::string path = cfg.get_string("data.path");
  if (!path.empty() && fs::path(path).is_relative())
    cfg.set("data.path", fs::absolute(path).lexically_normal().string());
  return cfg;
}

TrainSummary train(const Config& cfg_in, const TrainOptions& topt, const Datasets* data_in) {
  Config cfg = cfg_in;
  const std::string name = cfg.get_string("run.name");
  const bool resume = topt.mode == RunDirMode::resume;
  std::string notes;
  if (resume) {
    // The saved configuration is the run's; only run.stop_after may differ.
    const std::string dir = prepare_run_dir(topt.runs_root, name, topt.mode);
    Config saved;
    saved.load_file(dir + "/config.toml");
    saved.set("run.stop_after", cfg.get_int("run.stop_after"));
    for (const auto& [key, value] : cfg.values())
      if (key != "run.name" && saved.values().count(key) && saved.values().at(key) != value)
        notes += (notes.empty() ? "" : ", ") + key;
    cfg = saved;
  } else {
    cfg = resolve_paths(cfg);
  }
  cfg.validate();
  check_run_setup(cfg, {cfg.get_string("loss.name")});
  if (cfg.get_int("run.threads") > 0) cpu::set_num_threads(int(cfg.get_int("run.threads")));
  const Device dev = cfg.get_string("run.device") == "cuda" ? Device::cuda : Device::cpu;

  // Data before the run directory: a missing or broken dataset leaves nothing behind.
  Datasets loaded;
  if (!data_in) loaded = load_datasets(cfg);
  const Datasets& data = data_in ? *data_in : loaded;
  // Every objective compares an image's views with other images': a step needs N >= 2. (A
  // training set smaller than the batch is one partial batch of all its images.)
  if (std::min(data.train.size(), cfg.get_int("data.batch_size")) < 2)
    throw std::invalid_argument(
        "[config] a step needs at least 2 images: data.batch_size = " +
        std::to_string(cfg.get_int("data.batch_size")) +
        ", training images = " + std::to_string(data.train.size()) +
        " (data.train_limit = " + std::to_string(cfg.get_int("data.train_limit")) + ")");

  const std::string dir = prepare_run_dir(topt.runs_root, name, topt.mode);
  if (!resume) write_text_file(dir + "/config.toml", cfg.to_toml());
  RunLog log(dir + "/log.txt", topt.quiet);
  MetricsFile metrics(dir + "/metrics.jsonl");
  log.line("selfsup train: " + dir + (resume ? " (resumed)" : ""));
  if (!notes.empty())
    log.line("resume: the run's own " + dir + "/config.toml is used; ignored the differing " +
             notes + " of the command line (only run.stop_after may change)");
  log.line("config:\n" + cfg.summary());
  log.line(std::string(cpu::thread_policy()) + "; " + cpu::blas_description());
  if (const unsigned hw = std::thread::hardware_concurrency();
      hw > 0 && cfg.get_int("run.threads") > int64_t(hw))
    log.line("warning: run.threads = " + std::to_string(cfg.get_int("run.threads")) +
             " exceeds this machine's " + std::to_string(hw) +
             " hardware threads; oversubscribed threads only slow the run down");
  log.line("data: " + data.train.name() + " train " + std::to_string(data.train.size()) +
           " images, held-out " + std::to_string(data.heldout.size()) + ", " +
           std::to_string(data.train.channels()) + "x" + std::to_string(data.train.height()) + "x" +
           std::to_string(data.train.width()));

  auto model = build_model(cfg, data.train.channels());
  log.line(model_summary(*model, {cfg.get_int("data.batch_size") * cfg.get_int("data.views"),
                                  data.train.channels(), data.train.height(), data.train.width()}));
  if (dev != Device::cpu) model->to(dev);
  LossPtr loss =
      make_loss(cfg.get_string("loss.name"), cfg.loss_params(cfg.get_string("loss.name")));
  std::unique_ptr<Optimizer> opt = build_optimizer(cfg, *model);

  LoaderOptions lo;
  lo.batch_size = cfg.get_int("data.batch_size");
  lo.views = int(cfg.get_int("data.views"));
  lo.workers = int(cfg.get_int("data.workers"));
  lo.seed = uint64_t(cfg.get_int("run.seed"));
  lo.drop_last = data.train.size() >= lo.batch_size;
  Loader loader(data.train, augment_preset(cfg.get_string("data.augment"), data.train), lo);
  const int64_t epochs = cfg.get_int("optim.epochs"), spe = loader.batches_per_epoch();
  const int64_t total = epochs * spe;
  const int64_t warmup = int64_t(std::llround(cfg.get_double("optim.warmup_epochs") * double(spe)));
  WarmupCosineSchedule sched(base_lr(cfg), total, warmup, cfg.get_double("optim.final_lr"));

  int64_t start_epoch = 0, step = 0;
  const std::string ckpt = dir + "/checkpoint.safetensors";
  if (resume) {
    Checkpoint c = load_checkpoint(ckpt, *model, opt.get());
    start_epoch = c.epoch + 1;
    step = c.step;
    log.line("resumed after epoch " + std::to_string(c.epoch + 1) + " of " +
             std::to_string(epochs) + " (global step " + std::to_string(step) + ")");
  }

  TrainSummary sum;
  sum.run_dir = dir;
  Progress progress(total - step);
  double train_seconds = 0;
  int64_t trained_images = 0;
  const int64_t stop_after = cfg.get_int("run.stop_after");
  const int64_t K = lo.views, log_every = cfg.get_int("run.log_every");
  for (int64_t e = start_epoch; e < epochs; ++e) {
    if (stop_after > 0 && e - start_epoch >= stop_after) break;
    model->train();
    loader.start_epoch(e);
    Batch b;
    double loss_sum = 0;
    std::map<std::string, double> diag_sum;
    int64_t nb = 0;
    while (loader.next(b)) {
      const auto t0 = std::chrono::steady_clock::now();
      opt->set_lr(sched(step));
      Tensor x = Tensor::from_buffer(b.images.data(), {b.K * b.N, b.C, b.H, b.W}, DType::f32, dev);
      LossOutput out = loss->forward(model->forward(x), K);
      const double lv = out.loss.item();
      if (!std::isfinite(lv))
        throw std::runtime_error("[train] loss is " + std::to_string(lv) + " at epoch " +
                                 std::to_string(e + 1) + " step " + std::to_string(nb + 1) + "/" +
                                 std::to_string(spe) + "; lower optim.lr or check the data");
      opt->zero_grad();
      out.loss.backward();
      opt->step();
      train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      trained_images += b.K * b.N;
      loss_sum += lv;
      for (auto& [k, v] : out.diagnostics) diag_sum[k] += v;
      ++nb;
      ++step;
      progress.step(b.K * b.N);
      if (nb % log_every == 0 || nb == spe)
        log.line("epoch " + std::to_string(e + 1) + "/" + std::to_string(epochs) + " step " +
                 std::to_string(nb) + "/" + std::to_string(spe) + " loss " + fmt("%.4f", lv) +
                 " lr " + fmt("%.4g", opt->lr()) + " | " +
                 fmt("%.0f", progress.images_per_second() / double(b.K)) + " img/s (" +
                 fmt("%.0f", progress.images_per_second()) + " views/s) | ETA " + progress.eta());
    }
    nlohmann::json row = {{"epoch", e + 1},
                          {"step", step},
                          {"loss", nb ? loss_sum / nb : 0.0},
                          {"lr", opt->lr()},
                          {"seconds", train_seconds}};
    std::string dline =
        "epoch " + std::to_string(e + 1) + " done: loss " + fmt("%.4f", nb ? loss_sum / nb : 0.0);
    for (auto& [k, v] : diag_sum) {
      row[k] = v / double(std::max<int64_t>(1, nb));
      sum.last_diagnostics[k] = row[k];
      dline += " " + k + " " + fmt("%.4f", double(row[k]));
    }
    log.line(dline);
    const int64_t every = cfg.get_int("eval.every");
    if ((every > 0 && (e + 1) % every == 0) || e + 1 == epochs) {
      model->eval();
      const bool head = cfg.get_string("eval.features") == "head";
      EncodeFn enc = [&](const Tensor& xx) {
        return head ? model->forward(xx) : model->features(xx);
      };
      FeatureSet bank = extract_features(data.train, enc, cfg.get_int("eval.bank_limit"), 512, dev);
      FeatureSet test = extract_features(data.heldout, enc, 0, 512, dev);
      const int64_t knn_k = cfg.get_int("eval.knn_k"), bank_n = bank.features.size(0);
      KnnResult kr = knn_evaluate(bank, test, knn_k, cfg.get_double("eval.knn_t"));
      // knn_evaluate votes over min(k, bank size) neighbours; say so where that is fewer.
      const std::string k_text =
          knn_k <= bank_n
              ? "k=" + std::to_string(knn_k)
              : "k=" + std::to_string(bank_n) + ": eval.knn_k = " + std::to_string(knn_k) +
                    " exceeds the bank's " + std::to_string(bank_n) + " images";
      row["knn_top1"] = kr.top1;
      row["knn_top5"] = kr.top5;
      sum.last_knn_top1 = kr.top1;
      if (e + 1 == epochs) {
        sum.final_bank = std::make_shared<FeatureSet>(std::move(bank));
        sum.final_test = std::make_shared<FeatureSet>(std::move(test));
      }
      log.line("epoch " + std::to_string(e + 1) + " k-NN (" + k_text + ") top1 " +
               fmt("%.4f", kr.top1) + " top5 " + fmt("%.4f", kr.top5));
    }
    metrics.write(row);
    const int64_t ck = cfg.get_int("checkpoint.every");
    if ((ck > 0 && (e + 1) % ck == 0) || e + 1 == epochs ||
        (stop_after > 0 && e + 1 - start_epoch >= stop_after))
      save_checkpoint(ckpt, *model, *opt, e, step, cfg);
    sum.epochs_done = e + 1;
    sum.last_loss = nb ? loss_sum / nb : 0.0;
  }
  sum.train_seconds = train_seconds;
  sum.images_per_second = train_seconds > 0 ? double(trained_images) / train_seconds : 0;
  // This invocation's epochs (a resumed run counts only those it trained itself).
  const int64_t ran = sum.epochs_done - std::min(start_epoch, sum.epochs_done);
  log.line("trained " + std::to_string(ran) + " epochs in " + format_duration(train_seconds) +
           " (" + fmt("%.1f", sum.images_per_second) + " views/s)" +
           (start_epoch > 0 ? "; epochs done in this run: " + std::to_string(sum.epochs_done) +
                                  " of " + std::to_string(epochs)
                            : std::string()));
  return sum;
}

}  // namespace ss
