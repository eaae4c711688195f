// File helpers shared by the dataset readers: whole-file reads with a size cap and errors that
// name the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ss {

// Reads a whole file; throws "[tag] path: reason" when it cannot be opened or exceeds max_bytes.
std::vector<uint8_t> read_file_bytes(const std::string& path, const std::string& tag,
                                     size_t max_bytes = size_t(1) << 31);
// "a/b" from "a" and "b" (no doubled separator).
std::string join_path(const std::string& dir, const std::string& name);
bool is_regular_file(const std::string& path);

}  // namespace ss
