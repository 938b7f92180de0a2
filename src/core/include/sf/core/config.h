// Typed configuration keys bound to fields of plain config structs.
// Sources apply in order, later ones winning: built-in defaults (the fields' initial values), a TOML
// file, STREAMFLEX_<SECTION>_<NAME> environment variables, then --<section>.<name> flags.
// A bad value fails with a message that names the key. Startup only; not thread-safe.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sf {

class ConfigSchema {
 public:
  void add(std::string key, std::string help, std::string& field);
  void add(std::string key, std::string help, bool& field);
  void add(std::string key, std::string help, std::int64_t& field, std::int64_t min, std::int64_t max);
  void add(std::string key, std::string help, double& field, double min, double max);
  // Durations are written as "500ms", "5s", "2m" (a bare number means milliseconds).
  void add(std::string key, std::string help, std::chrono::milliseconds& field, std::chrono::milliseconds min,
           std::chrono::milliseconds max);
  // Host and port as "host:port"; the port may be 0 (pick a free one).
  void add_endpoint(std::string key, std::string help, std::string& field);

  // Registers one --<key> option per key on the CLI app (call before parsing).
  void add_flags(CLI::App& app);
  // Applies the file (if path is non-empty), the environment and the parsed flags.
  // Returns an error message naming the key, or "" on success.
  std::string load(const std::string& toml_path, char** environ);
  // Every key with its default (as built) and help, for the README and `streamflex config`.
  std::string describe() const;

 private:
  struct Entry {
    std::string key;
    std::string help;
    std::string kind;
    std::string initial;
    std::function<std::string(const std::string&)> set;  // returns "" or a reason
    std::function<std::string()> get;
  };
  Entry& insert(std::string key, std::string help, std::string kind);
  std::string apply(const std::string& source, const std::string& key, const std::string& value);

  std::vector<Entry> entries_;
  std::map<std::string, std::string> flag_values_;
};

// Parses "1500ms", "2s", "1m", "250" (ms).
bool parse_duration(const std::string& text, std::chrono::milliseconds& out);

}  // namespace sf
