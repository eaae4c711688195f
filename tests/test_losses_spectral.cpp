// Spectral contrastive loss: a hand-computed value, a gradcheck, the registry.
#include "losses/spectral.h"
#include "tests/helpers.h"

using namespace ss;
using namespace ss::test;

TEST_CASE("spectral: hand case") {
  // a = (1,0), (0,1); b = (1,0), (1,1): g = a b^T = [[1, 1], [0, 1]].
  // attract = -2 (1 + 1) / 2 = -2; repel = (1^2 + 0^2) / 2 = 0.5; L = -1.5.
  const Tensor z = Tensor::from_vector(std::vector<double>{1, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  CHECK(spectral_loss(z, 2).item() == doctest::Approx(-1.5).epsilon(1e-12));
  CHECK(make_loss("spectral", {{"w_repel", 2}})->forward(z, 2).loss.item() ==
        doctest::Approx(-1.0).epsilon(1e-12));
}

TEST_CASE("spectral: gradcheck in float64, K = 2 and 3") {
  LossPtr loss = make_loss("spectral");
  for (int64_t K : {2, 3}) {
    INFO("K = " << K);
    check_gradients([&](const std::vector<Tensor>& in) { return loss->forward(in[0], K).loss; },
                    {rand64({K * 3, 4}, 1)});
  }
}

TEST_CASE("spectral: parameter and shape errors") {
  check_throws_with([] { make_loss("spectral", {{"w_repel", -1}}); }, {"[spectral]", "'w_repel'"});
  check_throws_with([] { make_loss("spectral", {{"mu", 1}}); }, {"unknown parameter 'mu'"});
  check_throws_with(
      [] {
        make_loss("spectral")->forward(Tensor::zeros({2, 3}), 2);
      },
      {"[spectral]", "N >= 2", "[2, 3]"});
}
