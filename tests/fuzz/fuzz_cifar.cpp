// libFuzzer target: CIFAR-10 / CIFAR-100 batch parsing from memory. Byte 0 picks the variant.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ss::CifarOptions opt;
  opt.kind = (data[0] & 1) ? ss::CifarKind::cifar100 : ss::CifarKind::cifar10;
  opt.coarse = (data[0] & 2) != 0;
  try {
    ss::MemoryDataset ds = ss::make_cifar_dataset(opt);
    ss::parse_cifar(data + 1, size - 1, "fuzz.bin", opt, ds);
    for (int64_t i = 0; i < ds.size(); ++i) {
      if (ds.label(i) < 0 || ds.label(i) >= ds.num_classes()) __builtin_trap();
      volatile uint8_t px = ds.image(i)[3071];
      (void)px;
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
