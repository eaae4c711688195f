// The tool's configuration, run directories, checkpoints and resume, and the evaluation code.
#include <filesystem>
#include <fstream>

#include "apps/bench.h"
#include "apps/compare.h"
#include "apps/config.h"
#include "apps/evaluate.h"
#include "apps/run_io.h"
#include "apps/train.h"
#include "engine/serialize.h"
#include "losses/loss.h"
#include "tests/helpers.h"

namespace fs = std::filesystem;
using namespace ss;
using namespace ss::test;

namespace {

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("selfsup_test_apps_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// 64 small two-class images: bright or dark squares with noise, 1 channel, 12x12.
Datasets tiny_data() {
  Datasets d;
  for (MemoryDataset* ds : {&d.train, &d.heldout}) {
    *ds = MemoryDataset("tiny", 1, 12, 12, 2);
    Generator g(ds == &d.train ? 1 : 2);
    for (int i = 0; i < 64; ++i) {
      std::vector<uint8_t> px(144);
      for (int k = 0; k < 144; ++k) {
        const bool inside = (k / 12 >= 3 && k / 12 < 9 && k % 12 >= 3 && k % 12 < 9);
        const double base = inside ? (i % 2 ? 200 : 60) : 120;
        px[size_t(k)] = uint8_t(std::clamp(base + 30 * g.normal(), 0.0, 255.0));
      }
      ds->push(px.data(), i % 2);
    }
    ds->compute_stats();
  }
  return d;
}

Config tiny_config(const std::string& name) {
  Config c;
  c.set("run.name", name);
  c.set("run.threads", int64_t(1));
  c.set("run.log_every", int64_t(1000));
  c.set("data.augment", "fmnist");
  c.set("data.batch_size", int64_t(16));
  c.set("data.workers", int64_t(2));
  c.set("model.encoder", "resnet-mini");
  c.set("model.head_hidden", int64_t(16));
  c.set("model.head_out", int64_t(8));
  c.set("optim.epochs", int64_t(3));
  c.set("optim.warmup_epochs", 1.0);
  c.set("eval.knn_k", int64_t(5));
  c.set("eval.linear_epochs", int64_t(2));
  c.set("eval.every", int64_t(0));
  return c;
}

std::map<std::string, Tensor> final_weights(const std::string& run_dir) {
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : load_tensors(run_dir + "/checkpoint.safetensors").tensors) out[k] = v;
  return out;
}

}  // namespace

TEST_CASE("config: defaults, files, overrides and errors that name the key") {
  const std::string dir = temp_dir("config");
  Config c;
  CHECK(c.get_int("data.views") == 2);
  write_file(dir + "/a.toml",
             "[data]\nbatch_size = 64\n[loss]\nname = \"infonce\"\n[loss.infonce]\n"
             "temperature = 0.2\n[optim]\nlr = 1\n");
  c.load_file(dir + "/a.toml");
  c.apply_override("data.views=3");
  c.apply_override("data.dataset=cifar10");
  c.validate();
  CHECK(c.get_int("data.batch_size") == 64);
  CHECK(c.get_int("data.views") == 3);
  CHECK(c.get_double("optim.lr") == 1.0);  // an integer where a number is expected
  CHECK(c.get_string("data.dataset") == "cifar10");
  CHECK(c.loss_params("infonce") == LossParams{{"temperature", 0.2}});
  CHECK(c.loss_params("du").empty());

  // The resolved config reads back to the same values.
  write_file(dir + "/resolved.toml", c.to_toml());
  Config r;
  r.load_file(dir + "/resolved.toml");
  CHECK(r.to_toml() == c.to_toml());

  check_throws_with(
      [&] {
        Config x;
        x.apply_override("data.batchsize=3");
      },
      {"[config]", "data.batchsize"});
  check_throws_with(
      [&] {
        Config x;
        x.apply_override("data.views=two");
      },
      {"data.views"});
  check_throws_with(
      [&] {
        Config x;
        x.apply_override("novalue");
      },
      {"section.key=value"});
  write_file(dir + "/bad.toml", "[data]\nbatch_sise = 4\n");
  check_throws_with(
      [&] {
        Config x;
        x.load_file(dir + "/bad.toml");
      },
      {dir + "/bad.toml", "data.batch_sise"});
  write_file(dir + "/syntax.toml", "[data\n");
  check_throws_with(
      [&] {
        Config x;
        x.load_file(dir + "/syntax.toml");
      },
      {"syntax.toml:1"});
  auto range = [&](const std::string& set, const std::string& key) {
    Config x;
    x.apply_override(set);
    check_throws_with([&] { x.validate(); }, {"[config]", key});
  };
  range("data.views=1", "data.views");
  range("data.batch_size=0", "data.batch_size");
  range("optim.lr=-1", "optim.lr");
  range("run.device=tpu", "run.device");
  range("optim.name=sgdd", "optim.name");
  range("optim.warmup_epochs=50", "optim.warmup_epochs");
  {  // spaces around '=' are ignored; a loss parameter of the wrong type is named as such
    Config x;
    x.apply_override(" optim.lr = 0.125 ");
    CHECK(x.get_double("optim.lr") == 0.125);
    check_throws_with([&] { x.apply_override("loss.du.t=two"); },
                      {"loss.du.t", "must be a number", "\"two\""});
  }
  for (const char* name : {"run.name=.", "run.name=a/.", "run.name=a//b", "run.name=../x",
                           "run.name=/tmp/x", "run.name=a/"})
    range(name, "run.name");
  // Loss parameters are checked by the loss itself, naming the parameter.
  Config t;
  t.apply_override("loss.name=infonce");
  t.apply_override("loss.infonce.temperature=0");
  check_throws_with([&] { make_loss("infonce", t.loss_params("infonce")); }, {"temperature"});
}

TEST_CASE("run directories are never overwritten unless asked") {
  const std::string root = temp_dir("rundir");
  const std::string d = prepare_run_dir(root, "a", RunDirMode::create);
  write_file(d + "/config.toml", "# mine\n");
  check_throws_with([&] { prepare_run_dir(root, "a", RunDirMode::create); },
                    {"is not empty", "--overwrite"});
  // --resume is suggested only where there is a checkpoint to resume from.
  try {
    prepare_run_dir(root, "a", RunDirMode::create, true);
    FAIL("expected an error");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("--resume") == std::string::npos);
  }
  write_file(d + "/checkpoint.safetensors", "x");
  check_throws_with([&] { prepare_run_dir(root, "a", RunDirMode::create, true); }, {"--resume"});
  // A file the user put into a run directory stops --overwrite, and stays.
  write_file(d + "/my_notes.txt", "mine");
  check_throws_with([&] { prepare_run_dir(root, "a", RunDirMode::overwrite); },
                    {"refusing to overwrite", "my_notes.txt", "did not write"});
  CHECK(fs::exists(d + "/my_notes.txt"));
  fs::remove(d + "/my_notes.txt");
  // The runs root itself is never a run directory, even when it holds a config.toml (a
  // comparison's folder used as --runs).
  write_file(root + "/config.toml", "# a comparison\n");
  for (const char* bad : {".", "a/.", "./", ""})
    check_throws_with([&] { prepare_run_dir(root, bad, RunDirMode::overwrite); },
                      {"does not name a folder inside"});
  CHECK(fs::exists(root + "/config.toml"));
  CHECK(fs::exists(d + "/config.toml"));
  fs::create_directories(root + "/notarun");
  write_file(root + "/notarun/thesis.tex", "precious");
  check_throws_with([&] { prepare_run_dir(root, "notarun", RunDirMode::overwrite); },
                    {"refusing to overwrite"});
  CHECK(fs::exists(root + "/notarun/thesis.tex"));
  prepare_run_dir(root, "a", RunDirMode::overwrite);
  CHECK_FALSE(fs::exists(d + "/config.toml"));
  check_throws_with([&] { prepare_run_dir(root, "missing", RunDirMode::resume); },
                    {"cannot resume"});
}

TEST_CASE("a run that would fail on its setup leaves no directory behind") {
  const std::string root = temp_dir("setup");
  TrainOptions to;
  to.runs_root = root;
  to.quiet = true;
  auto fails = [&](Config c, std::vector<std::string> parts) {
    c.validate();
    check_throws_with([&] { train(c, to); }, parts);
    CHECK_FALSE(fs::exists(root + "/" + c.get_string("run.name")));
  };
  Config c = tiny_config("bad");
  c.set("loss.infonce.temperature", 0.0);  // a table of a loss that is not the one running
  fails(c, {"[config]", "[loss.infonce]", "temperature", "> 0"});
  c = tiny_config("bad");
  c.set("loss.nope.x", 1.0);
  fails(c, {"[loss.nope]", "unknown loss 'nope'"});
  c = tiny_config("bad");
  c.set("loss.du.tt", 1.0);
  fails(c, {"loss 'du'", "unknown parameter 'tt'"});
  c = tiny_config("bad");
  c.set("model.encoder", "resnet50");
  fails(c, {"[resnet]", "resnet50"});
  c = tiny_config("bad");
  c.set("data.augment", "strong");
  fails(c, {"data.augment", "strong", "simclr-cifar"});
  c = tiny_config("bad");
  c.set("data.dataset", "cifar10");
  c.set("data.path", root + "/no-such-folder");
  fails(c, {"no-such-folder"});
  c = tiny_config("bad");
  c.set("data.batch_size", int64_t(1));
  fails(c, {"at least 2 images", "data.batch_size = 1"});

  CompareOptions co;
  co.runs_root = root;
  co.losses = {"du", "du"};
  check_throws_with([&] { run_compare(tiny_config("cmp"), co); }, {"[compare]", "'du' twice"});
  co.losses = {};
  check_throws_with([&] { run_compare(tiny_config("cmp"), co); }, {"[compare]", "no objective"});
  CHECK_FALSE(fs::exists(root + "/cmp"));
}

TEST_CASE("training writes config, log, metrics and an atomic checkpoint; resume is exact") {
  const std::string root = temp_dir("resume");
  const Datasets data = tiny_data();
  TrainOptions to;
  to.runs_root = root;
  to.quiet = true;

  // Straight through: 3 epochs.
  TrainSummary full = train(tiny_config("full"), to, &data);
  CHECK(full.epochs_done == 3);
  for (const char* f : {"config.toml", "log.txt", "metrics.jsonl", "checkpoint.safetensors"})
    CHECK(fs::exists(root + "/full/" + f));
  CHECK_FALSE(fs::exists(root + "/full/checkpoint.safetensors.tmp"));
  CHECK(read_metrics(root + "/full/metrics.jsonl").size() == 3);

  // Interrupted after 1 epoch, then resumed twice (1 epoch, then the rest).
  Config part = tiny_config("part");
  part.set("run.stop_after", int64_t(1));
  CHECK(train(part, to, &data).epochs_done == 1);
  TrainOptions ro = to;
  ro.mode = RunDirMode::resume;
  CHECK(train(part, ro, &data).epochs_done == 2);
  part.set("run.stop_after", int64_t(0));
  CHECK(train(part, ro, &data).epochs_done == 3);
  CHECK(read_metrics(root + "/part/metrics.jsonl").size() == 3);

  auto a = final_weights(root + "/full"), b = final_weights(root + "/part");
  REQUIRE(a.size() == b.size());
  size_t compared = 0;
  for (auto& [k, v] : a) {
    INFO(k);
    REQUIRE(b.count(k));
    CHECK(v.to_vector() == b[k].to_vector());  // bit-identical
    ++compared;
  }
  CHECK(compared > 20);

  // A run directory that exists is refused without --overwrite.
  check_throws_with([&] { train(tiny_config("full"), to, &data); }, {"is not empty"});
}

TEST_CASE("k-NN votes, label checks, and the metrics of Wang & Isola") {
  FeatureSet bank, q;
  bank.features =
      Tensor::from_vector(std::vector<float>{1, 0, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f}, {4, 2});
  bank.labels = {0, 0, 1, 1};
  bank.num_classes = 2;
  q.features = Tensor::from_vector(std::vector<float>{1, 0.05f, 0.05f, 1}, {2, 2});
  q.labels = {0, 1};
  q.num_classes = 2;
  KnnResult r = knn_evaluate(bank, q, 2, 0.1);
  CHECK(r.top1 == 1.0);
  CHECK(r.top5 == 1.0);
  q.labels = {0, 0};
  CHECK(knn_evaluate(bank, q, 2, 0.1).top1 == 0.5);
  bank.labels = {0, 0, 1, 2};  // 2 is outside [0, 2) (case B37)
  check_throws_with([&] { knn_evaluate(bank, q, 2, 0.1); }, {"[knn]", "label 2", "[0, 2)"});

  // Uniformity of (1,0), (0,1), (-1,0) at t = 2, and alignment of identical views.
  Tensor u = Tensor::from_vector(std::vector<float>{1, 0, 0, 1, -1, 0}, {3, 2});
  CHECK(uniformity_metric(u) == doctest::Approx(-4.39635).epsilon(1e-5));
  CHECK(uniformity_metric(mul(u, 10.0)) == doctest::Approx(-4.39635).epsilon(1e-5));
  CHECK(alignment_metric(u, u) == doctest::Approx(0.0));
  check_throws_with([&] { uniformity_metric(u.slice(0, 1)); }, {"[uniformity]"});
}

TEST_CASE("linear probe learns separable features and leaves them untouched") {
  FeatureSet tr, te;
  Generator g(3);
  std::vector<float> x, y;
  for (int i = 0; i < 200; ++i) {
    const int c = i % 3;
    x.push_back(float(c == 0) * 2 + float(g.normal()) * 0.3f);
    x.push_back(float(c == 1) * 2 + float(g.normal()) * 0.3f);
    x.push_back(float(g.normal()));
    tr.labels.push_back(c);
  }
  tr.features = Tensor::from_vector(x, {200, 3});
  tr.num_classes = 3;
  te = tr;
  const std::vector<double> before = tr.features.to_vector();
  LinearProbeOptions lp;
  lp.epochs = 20;
  CHECK(linear_probe(tr, te, lp) > 0.95);
  CHECK(tr.features.to_vector() == before);
}

TEST_CASE("the comparison table lists every row and leaves missing figures blank") {
  CompareRow a;
  a.name = "du";
  a.loss = -3.5;
  a.eval.knn = {0.8, 0.99};
  a.eval.linear_top1 = 0.85;
  a.eval.align = 0.4;
  a.eval.unif = -3.2;
  a.train_seconds = 75;
  a.images_per_second = 512;
  CompareRow b;
  b.name = "raw pixels";
  b.eval.knn = {0.7, 0.9};
  b.eval.align = NAN;
  const std::string md = markdown_table({a, b});
  CHECK(md.find("| du | -3.5000 | 80.00 | 99.00 | 85.00 | 0.4000 | -3.2000 | 1m15s | 512.0 |") !=
        std::string::npos);
  CHECK(md.find("| raw pixels | - | 70.00 | 90.00 | - | - |") != std::string::npos);
  CHECK(csv_table({a, b}).find("du,-3.5,0.8,0.99,0.85") != std::string::npos);
}

TEST_CASE("bench checks its config as train does, and records what it timed") {
  const std::string dir = temp_dir("bench");
  const std::string base =
      "[model]\nencoder = \"resnet-mini\"\nhead_hidden = 16\nhead_out = 8\n"
      "[loss]\nname = \"du\"\n";
  BenchOptions o;
  o.batch = 4;
  o.image_size = 8;
  o.channels = 1;
  o.warmup = 0;
  o.steps = 1;
  o.profile = false;

  // A misspelt key in a table of a loss that bench is not timing is still an error.
  write_file(dir + "/typo.toml", base + "[loss.infonce]\ntemprature = 0.5\n");
  o.config = dir + "/typo.toml";
  check_throws_with([&] { run_bench(o); }, {"[loss.infonce]", "temprature"});
  // So is an unknown [loss] name, even when --loss names another loss.
  write_file(dir + "/name.toml", "[loss]\nname = \"duu\"\n");
  o.config = dir + "/name.toml";
  o.loss = "infonce";
  check_throws_with([&] { run_bench(o); }, {"[config]", "duu"});

  write_file(dir + "/good.toml", base);
  o.config = dir + "/good.toml";
  o.loss = "";
  o.json = dir + "/bench.jsonl";
  CHECK(run_bench(o) == 0);
  std::ifstream in(o.json);
  std::string line;
  REQUIRE(std::getline(in, line));
  for (const char* field : {"\"loss\":\"du\"", "\"model\":\"resnet-mini\"", "\"batch\":4",
                            "\"threads\":", "\"device\":\"cpu\"", "\"image_size\":8"})
    CHECK_MESSAGE(line.find(field) != std::string::npos, field << " missing from " << line);
}
