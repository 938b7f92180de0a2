// Structured JSON log lines on stderr: {"ts":…,"level":…,"component":…,"msg":…, fields…}.
// Thread-safe; one process-wide sink (spdlog underneath). Never pass secrets as fields.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace sf::log {

enum class Level { debug, info, warn, error };

// Parses "debug" | "info" | "warn" | "error"; false if the name is unknown.
bool parse_level(std::string_view name, Level& out);
void set_level(Level level);
bool enabled(Level level);
void write(Level level, std::string_view component, std::string_view msg, const nlohmann::json& fields = nullptr);

inline void debug(std::string_view c, std::string_view m, const nlohmann::json& f = nullptr) {
  if (enabled(Level::debug)) write(Level::debug, c, m, f);
}
inline void info(std::string_view c, std::string_view m, const nlohmann::json& f = nullptr) {
  write(Level::info, c, m, f);
}
inline void warn(std::string_view c, std::string_view m, const nlohmann::json& f = nullptr) {
  write(Level::warn, c, m, f);
}
inline void error(std::string_view c, std::string_view m, const nlohmann::json& f = nullptr) {
  write(Level::error, c, m, f);
}

}  // namespace sf::log
