// libFuzzer target: IDX parsing. Byte 0 picks images (2051) or labels (2049) from memory, or a
// whole images + labels pair through a temporary file (the gzip-transparent read path).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  data += 1, size -= 1;
  try {
    if (mode < 2) {
      ss::IdxArray a = ss::parse_idx(data, size, "fuzz.idx", mode == 0 ? 2051 : 2049);
      size_t total = 1;
      for (uint32_t d : a.dims) total *= d;
      if (total != a.data.size()) __builtin_trap();
    } else {
      // Split the input: images file, then labels file (the last 12 bytes are the labels).
      const size_t cut = size > 12 ? size - 12 : size;
      char img[] = "/tmp/fuzz_idx_img_XXXXXX", lab[] = "/tmp/fuzz_idx_lab_XXXXXX";
      const int fi = mkstemp(img), fl = mkstemp(lab);
      if (fi < 0 || fl < 0) return 0;
      const bool ok = write(fi, data, cut) == ssize_t(cut) &&
                      write(fl, data + cut, size - cut) == ssize_t(size - cut);
      close(fi), close(fl);
      try {
        if (ok) {
          ss::MemoryDataset ds = ss::load_idx(img, lab, "fuzz", 10);
          for (int64_t i = 0; i < ds.size(); ++i)
            if (ds.label(i) >= 10) __builtin_trap();
        }
      } catch (const std::runtime_error&) {
      }
      std::remove(img), std::remove(lab);
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
