// Run configuration: a TOML file plus `--set key=value` overrides, checked against a schema.
// Every key is "section.name"; unknown keys and out-of-range values are errors naming the key.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace ss {

using ConfigValue = std::variant<bool, int64_t, double, std::string>;

class Config {
 public:
  // The defaults of every known key.
  Config();

  // Reads a TOML file; every key must be known (error names the file and the key).
  void load_file(const std::string& path);
  // "section.key=value", the value parsed by the key's type.
  void apply_override(const std::string& assignment);
  // Range and consistency checks (temperature > 0, views >= 2, batch_size >= 1, ...).
  void validate() const;

  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  void set(const std::string& key, ConfigValue v);

  // Parameters of `loss`: the numeric keys of [loss] and those of its [loss.<loss>] table.
  std::map<std::string, double> loss_params(const std::string& loss) const;

  // The resolved configuration as TOML, sections in a fixed order.
  std::string to_toml() const;
  // One "key = value" per line, for the log.
  std::string summary() const;

  const std::map<std::string, ConfigValue>& values() const { return values_; }

 private:
  const ConfigValue& at(const std::string& key) const;
  std::map<std::string, ConfigValue> values_;
};

}  // namespace ss
