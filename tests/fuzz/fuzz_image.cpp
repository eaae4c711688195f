// libFuzzer target: image decoding (stb_image) and resizing from memory. Byte 0 picks the output
// size so that both the upscaling and the downscaling paths are exercised.
#include <cstdint>
#include <stdexcept>

#include "data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int side = 1 + (data[0] % 40);
  try {
    std::vector<uint8_t> rgb = ss::decode_image(data + 1, size - 1, "fuzz.img", side, side + 3);
    if (rgb.size() != size_t(side) * size_t(side + 3) * 3) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
