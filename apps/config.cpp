#include "apps/config.h"
#include "apps/run_io.h"

#include <toml++/toml.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace ss {

namespace {

struct KeySpec {
  const char* key;
  ConfigValue def;
  double lo, hi;  // inclusive numeric range (ignored for strings and booleans)
  const char* help;
};

constexpr double kInf = HUGE_VAL;

// Every key the tool knows, with its default, its range and what it means.
const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> s = {
      {"run.name", std::string("run"), 0, 0, "name of the run directory under runs/"},
      {"run.seed", int64_t(0), 0, 9.0e18, "base seed of every random stream"},
      {"run.device", std::string("cpu"), 0, 0, "cpu or cuda"},
      {"run.threads", int64_t(0), 0, 1024, "compute threads (0: all cores)"},
      {"run.log_every", int64_t(20), 1, 1e9, "steps between progress lines"},
      {"run.stop_after", int64_t(0), 0, 1e9, "stop after n epochs of this invocation (0: never)"},
      {"data.dataset", std::string("fashion-mnist"), 0, 0,
       "fashion-mnist, mnist, cifar10, cifar100 or folder"},
      {"data.path", std::string(""), 0, 0, "dataset folder or file (empty: the default)"},
      {"data.train_files", std::string(""), 0, 0, "CIFAR: comma-separated training batch files"},
      {"data.eval_files", std::string(""), 0, 0, "CIFAR: comma-separated held-out batch files"},
      {"data.coarse_labels", false, 0, 0, "CIFAR-100: the 20 coarse labels, not the 100 fine"},
      {"data.train_limit", int64_t(0), 0, 1e12, "use the first n training images (0: all)"},
      {"data.eval_limit", int64_t(0), 0, 1e12, "use the first n held-out images (0: all)"},
      {"data.image_size", int64_t(32), 8, 4096, "image folders: resize to this size"},
      {"data.augment", std::string("fmnist"), 0, 0, "augmentation preset"},
      {"data.views", int64_t(2), 2, 64, "K, augmented views per image"},
      {"data.batch_size", int64_t(256), 1, 1e7, "N, images per step (K*N views)"},
      {"data.workers", int64_t(2), 1, 256, "loader worker threads"},
      {"model.encoder", std::string("resnet-tiny"), 0, 0, "encoder name (resnet18, ...)"},
      {"model.stem_stride", int64_t(1), 1, 4, "stride of the stem convolution (1: CIFAR stem)"},
      {"model.head_hidden", int64_t(512), 1, 1e6, "projection head hidden width"},
      {"model.head_out", int64_t(128), 1, 1e6, "projection head output width D"},
      {"model.head_bn", true, 0, 0, "batch norm in the projection head"},
      {"loss.name", std::string("du"), 0, 0, "registered loss name"},
      {"optim.name", std::string("sgd"), 0, 0, "sgd, lars or adamw"},
      {"optim.lr", 0.3, 0, 1e3, "base learning rate at batch 256 (scaled by batch/256)"},
      {"optim.scale_lr", true, 0, 0, "scale lr by batch_size / 256"},
      {"optim.momentum", 0.9, 0, 1, "momentum (sgd, lars) or beta1 (adamw)"},
      {"optim.nesterov", false, 0, 0, "Nesterov momentum (sgd)"},
      {"optim.weight_decay", 5e-4, 0, 10, "weight decay"},
      {"optim.exclude_bn_bias", true, 0, 0, "no decay / LARS adaptation for BN and biases"},
      {"optim.eta", 0.02, 0, 10, "LARS trust coefficient"},
      {"optim.epochs", int64_t(10), 1, 1e6, "pretraining epochs"},
      {"optim.warmup_epochs", 1.0, 0, 1e6, "linear warm-up length in epochs"},
      {"optim.final_lr", 0.0, 0, 1e3, "learning rate at the last step"},
      {"eval.every", int64_t(1), 0, 1e6, "k-NN on held-out images every n epochs (0: only at end)"},
      {"eval.knn_k", int64_t(200), 1, 1e6, "k of the k-NN classifier"},
      {"eval.knn_t", 0.1, 1e-6, 1e3, "temperature of the weighted k-NN vote"},
      {"eval.bank_limit", int64_t(0), 0, 1e12, "k-NN bank: first n training images (0: all)"},
      {"eval.linear_epochs", int64_t(30), 0, 1e6, "linear probe epochs (0: skip)"},
      {"eval.linear_lr", 0.1, 1e-9, 1e3, "linear probe learning rate"},
      {"eval.features", std::string("backbone"), 0, 0, "backbone or head"},
      {"checkpoint.every", int64_t(1), 0, 1e6, "epochs between checkpoints (0: only the last)"},
  };
  return s;
}

const KeySpec* find_spec(const std::string& key) {
  for (const KeySpec& k : schema())
    if (key == k.key) return &k;
  return nullptr;
}

bool is_loss_param(const std::string& key) {
  return key.rfind("loss.", 0) == 0 && key != "loss.name";
}

std::string known_sections() {
  return "run, data, model, loss, optim, eval, checkpoint";
}

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("[config] " + what);
}

std::string value_str(const ConfigValue& v) {
  std::ostringstream os;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>)
          os << (x ? "true" : "false");
        else if constexpr (std::is_same_v<T, std::string>)
          os << '"' << x << '"';
        else if constexpr (std::is_same_v<T, double>) {
          os.precision(12);
          os << x;
          if (std::isfinite(x) && os.str().find_first_of(".e") == std::string::npos) os << ".0";
        } else
          os << x;
      },
      v);
  return os.str();
}

// Converts v to the type of the key's default (ints are accepted where doubles are expected).
ConfigValue coerce(const std::string& key, const ConfigValue& def, const ConfigValue& v,
                   const std::string& where) {
  if (def.index() == v.index()) return v;
  if (std::holds_alternative<double>(def) && std::holds_alternative<int64_t>(v))
    return double(std::get<int64_t>(v));
  static const char* names[] = {"a boolean", "an integer", "a number", "a string"};
  fail(where + "key '" + key + "' must be " + names[def.index()] + ", got " + value_str(v));
}

}  // namespace

Config::Config() {
  for (const KeySpec& k : schema()) values_[k.key] = k.def;
}

const ConfigValue& Config::at(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) fail("unknown key '" + key + "'");
  return it->second;
}

bool Config::get_bool(const std::string& key) const {
  return std::get<bool>(at(key));
}
int64_t Config::get_int(const std::string& key) const {
  return std::get<int64_t>(at(key));
}
double Config::get_double(const std::string& key) const {
  const ConfigValue& v = at(key);
  return std::holds_alternative<int64_t>(v) ? double(std::get<int64_t>(v)) : std::get<double>(v);
}
const std::string& Config::get_string(const std::string& key) const {
  return std::get<std::string>(at(key));
}

void Config::set(const std::string& key, ConfigValue v) {
  const KeySpec* spec = find_spec(key);
  if (spec)
    values_[key] = coerce(key, spec->def, v, "");
  else if (is_loss_param(key) && !std::holds_alternative<std::string>(v))
    values_[key] = std::holds_alternative<bool>(v)      ? double(std::get<bool>(v))
                   : std::holds_alternative<int64_t>(v) ? double(std::get<int64_t>(v))
                                                        : v;
  else if (is_loss_param(key))
    fail("key '" + key + "' is a loss parameter and must be a number, got " + value_str(v));
  else
    fail("unknown key '" + key + "' (sections: " + known_sections() + ")");
}

void Config::load_file(const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    fail(os.str());
  }
  for (auto&& [section, node] : tbl) {
    const std::string sec(section.str());
    const toml::table* t = node.as_table();
    if (!t)
      fail(path + ": top-level key '" + sec + "' must be a section [" + sec +
           "] (sections: " + known_sections() + ")");
    for (auto&& [name, val_outer] : *t) {
      // [loss.<name>] sub-tables hold the parameters of one loss (for compare).
      std::vector<std::pair<std::string, const toml::node*>> entries;
      if (const toml::table* sub = val_outer.as_table(); sub && sec == "loss") {
        for (auto&& [k2, v2] : *sub)
          entries.push_back(
              {sec + "." + std::string(name.str()) + "." + std::string(k2.str()), &v2});
      } else {
        entries.push_back({sec + "." + std::string(name.str()), &val_outer});
      }
      for (auto& [key, node] : entries) {
        const toml::node& val = *node;
        ConfigValue v;
        if (auto b = val.value_exact<bool>())
          v = *b;
        else if (auto i = val.value_exact<int64_t>())
          v = *i;
        else if (auto d = val.value_exact<double>())
          v = *d;
        else if (auto s = val.value_exact<std::string>())
          v = *s;
        else
          fail(path + ": key '" + key + "' has an unsupported value type");
        try {
          set(key, v);
        } catch (const std::invalid_argument& e) {
          fail(path + ": " + std::string(e.what()).substr(9));
        }
      }
    }
  }
}

void Config::apply_override(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("override '" + assignment + "' must look like section.key=value");
  // Spaces around the key and the value are ignored: --set "optim.lr = 0.1".
  auto trim = [](std::string x) {
    const size_t b = x.find_first_not_of(" \t"), e = x.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : x.substr(b, e - b + 1);
  };
  const std::string key = trim(assignment.substr(0, eq)), text = trim(assignment.substr(eq + 1));
  if (key.empty()) fail("override '" + assignment + "' must look like section.key=value");
  // Parse the value as TOML so that types follow the same rules as the file.
  toml::table t;
  try {
    t = toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    t = toml::table{};
    t.insert("v", text);  // a bare word is a string: --set data.dataset=cifar10
  }
  const toml::node& n = *t.get("v");
  ConfigValue v;
  if (auto b = n.value_exact<bool>())
    v = *b;
  else if (auto i = n.value_exact<int64_t>())
    v = *i;
  else if (auto d = n.value_exact<double>())
    v = *d;
  else if (auto s = n.value_exact<std::string>())
    v = *s;
  else
    fail("override '" + assignment + "': unsupported value");
  try {
    set(key, v);
  } catch (const std::invalid_argument& e) {
    fail("--set " + assignment + ": " + std::string(e.what()).substr(9));
  }
}

void Config::validate() const {
  for (const KeySpec& k : schema()) {
    const ConfigValue& v = at(k.key);
    if (std::holds_alternative<int64_t>(v) || std::holds_alternative<double>(v)) {
      const double x = get_double(k.key);
      if (!(x >= k.lo && x <= k.hi))
        fail("key '" + std::string(k.key) + "' = " + value_str(v) + " is outside [" +
             value_str(k.lo) + ", " + value_str(k.hi) + "] (" + k.help + ")");
    }
  }
  auto one_of = [&](const char* key, std::initializer_list<const char*> options) {
    const std::string& v = get_string(key);
    std::string list;
    for (const char* o : options) {
      if (v == o) return;
      list += (list.empty() ? "" : ", ") + std::string(o);
    }
    fail("key '" + std::string(key) + "' = \"" + v + "\" must be one of: " + list);
  };
  one_of("run.device", {"cpu", "cuda"});
  one_of("data.dataset", {"fashion-mnist", "mnist", "cifar10", "cifar100", "folder"});
  one_of("optim.name", {"sgd", "lars", "adamw"});
  one_of("eval.features", {"backbone", "head"});
  if (get_double("optim.warmup_epochs") > double(get_int("optim.epochs")))
    fail("key 'optim.warmup_epochs' = " + value_str(at("optim.warmup_epochs")) +
         " exceeds optim.epochs = " + std::to_string(get_int("optim.epochs")));
  // run.name is a folder under the runs root ("", ".", "..", "a/.", "/x", "a//b" are not).
  const std::string& name = get_string("run.name");
  if (!is_plain_run_name(name))
    fail("key 'run.name' = \"" + name +
         "\" must be a relative folder name whose parts are not empty, '.' or '..'");
}

std::map<std::string, double> Config::loss_params(const std::string& loss) const {
  // "loss.<param>" applies to the configured loss, "loss.<name>.<param>" to that loss only.
  std::map<std::string, double> p;
  const std::string own = loss + ".";
  for (const auto& [k, v] : values_) {
    if (!is_loss_param(k)) continue;
    const std::string rest = k.substr(5);
    if (rest.find('.') == std::string::npos)
      p[rest] = get_double(k);
    else if (rest.rfind(own, 0) == 0)
      p[rest.substr(own.size())] = get_double(k);
  }
  return p;
}

std::string Config::to_toml() const {
  std::ostringstream os;
  std::string current;
  for (const char* sec : {"run", "data", "model", "loss", "optim", "eval", "checkpoint"}) {
    os << (current.empty() ? "" : "\n") << "[" << sec << "]\n";
    current = sec;
    for (const auto& [k, v] : values_)
      if (k.rfind(std::string(sec) + ".", 0) == 0)
        os << k.substr(std::string(sec).size() + 1) << " = " << value_str(v) << "\n";
  }
  return os.str();
}

std::string Config::summary() const {
  std::ostringstream os;
  for (const auto& [k, v] : values_) os << "  " << k << " = " << value_str(v) << "\n";
  return os.str();
}

}  // namespace ss
