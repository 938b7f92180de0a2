#include "sf/core/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <fmt/chrono.h>
#include <atomic>
#include <chrono>

namespace sf::log {
namespace {

std::atomic<Level> g_level{Level::info};

spdlog::logger& sink() {
  static auto logger = [] {
    auto l = std::make_shared<spdlog::logger>("sf", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

const char* name(Level l) {
  switch (l) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
  }
  return "info";
}

}  // namespace

bool parse_level(std::string_view n, Level& out) {
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error}) {
    if (n == name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

void set_level(Level level) {
  g_level = level;
}
bool enabled(Level level) {
  return level >= g_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view component, std::string_view msg, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  nlohmann::ordered_json line;
  line["ts"] = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms);
  line["level"] = name(level);
  line["component"] = component;
  line["msg"] = msg;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      // A field never overwrites the line's own keys; it is kept with a trailing underscore.
      const auto& k = it.key();
      bool reserved = k == "ts" || k == "level" || k == "component" || k == "msg";
      line[reserved ? k + "_" : k] = it.value();
    }
  }
  sink().info(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace sf::log
