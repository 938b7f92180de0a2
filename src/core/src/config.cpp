#include "sf/core/config.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <charconv>

namespace sf {
namespace {

std::string env_name(const std::string& key) {
  std::string n = "STREAMFLEX_";
  for (char c : key) n += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return n;
}

bool parse_int(const std::string& t, std::int64_t& out) {
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  return ec == std::errc() && p == t.data() + t.size() && !t.empty();
}

}  // namespace

bool parse_duration(const std::string& text, std::chrono::milliseconds& out) {
  std::string t = text;
  std::int64_t mult = 1;
  auto ends = [&](std::string_view suf) {
    return t.size() > suf.size() && t.compare(t.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (ends("ms")) {
    t.resize(t.size() - 2);
  } else if (ends("s")) {
    t.resize(t.size() - 1);
    mult = 1000;
  } else if (ends("m")) {
    t.resize(t.size() - 1);
    mult = 60000;
  }
  std::int64_t v = 0;
  if (!parse_int(t, v) || v < 0) return false;
  out = std::chrono::milliseconds(v * mult);
  return true;
}

ConfigSchema::Entry& ConfigSchema::insert(std::string key, std::string help, std::string kind) {
  entries_.push_back(Entry{std::move(key), std::move(help), std::move(kind), {}, {}, {}});
  return entries_.back();
}

void ConfigSchema::add(std::string key, std::string help, std::string& field) {
  auto& e = insert(std::move(key), std::move(help), "string");
  e.set = [&field](const std::string& v) {
    field = v;
    return std::string();
  };
  e.get = [&field] { return field; };
  e.initial = field;
}

void ConfigSchema::add(std::string key, std::string help, bool& field) {
  auto& e = insert(std::move(key), std::move(help), "bool");
  e.set = [&field](const std::string& v) {
    if (v == "true" || v == "1" || v == "yes")
      field = true;
    else if (v == "false" || v == "0" || v == "no")
      field = false;
    else
      return std::string("expected true or false");
    return std::string();
  };
  e.get = [&field] { return std::string(field ? "true" : "false"); };
  e.initial = e.get();
}

void ConfigSchema::add(std::string key, std::string help, std::int64_t& field, std::int64_t min, std::int64_t max) {
  auto& e = insert(std::move(key), std::move(help), "integer");
  e.set = [&field, min, max](const std::string& v) {
    std::int64_t n = 0;
    if (!parse_int(v, n) || n < min || n > max) return fmt::format("expected an integer from {} to {}", min, max);
    field = n;
    return std::string();
  };
  e.get = [&field] { return std::to_string(field); };
  e.initial = e.get();
}

void ConfigSchema::add(std::string key, std::string help, double& field, double min, double max) {
  auto& e = insert(std::move(key), std::move(help), "number");
  e.set = [&field, min, max](const std::string& v) {
    double d = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
    if (ec != std::errc() || p != v.data() + v.size() || v.empty() || d < min || d > max)
      return fmt::format("expected a number from {} to {}", min, max);
    field = d;
    return std::string();
  };
  e.get = [&field] { return fmt::format("{}", field); };
  e.initial = e.get();
}

void ConfigSchema::add(std::string key, std::string help, std::chrono::milliseconds& field,
                       std::chrono::milliseconds min, std::chrono::milliseconds max) {
  auto& e = insert(std::move(key), std::move(help), "duration");
  e.set = [&field, min, max](const std::string& v) {
    std::chrono::milliseconds d{};
    if (!parse_duration(v, d) || d < min || d > max)
      return fmt::format("expected a duration from {}ms to {}ms (like 500ms, 5s, 2m)", min.count(), max.count());
    field = d;
    return std::string();
  };
  e.get = [&field] { return fmt::format("{}ms", field.count()); };
  e.initial = e.get();
}

void ConfigSchema::add_endpoint(std::string key, std::string help, std::string& field) {
  auto& e = insert(std::move(key), std::move(help), "host:port");
  e.set = [&field](const std::string& v) {
    auto colon = v.rfind(':');
    std::int64_t port = -1;
    if (colon == std::string::npos || colon == 0 || !parse_int(v.substr(colon + 1), port) || port < 0 || port > 65535)
      return std::string("expected host:port with a port from 0 to 65535");
    field = v;
    return std::string();
  };
  e.get = [&field] { return field; };
  e.initial = field;
}

void ConfigSchema::add_flags(CLI::App& app) {
  for (auto& e : entries_) {
    app.add_option_function<std::string>(
           "--" + e.key, [this, key = e.key](const std::string& v) { flag_values_[key] = v; },
           fmt::format("{} [{}, default {}, env {}]", e.help, e.kind, e.initial, env_name(e.key)))
        ->group("Configuration");
  }
}

std::string ConfigSchema::apply(const std::string& source, const std::string& key, const std::string& value) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key; });
  if (it == entries_.end()) return fmt::format("{}: unknown configuration key '{}'", source, key);
  if (auto why = it->set(value); !why.empty()) return fmt::format("{}: {} = '{}': {}", source, key, value, why);
  return {};
}

std::string ConfigSchema::load(const std::string& toml_path, char** environ) {
  if (!toml_path.empty()) {
    toml::table tbl;
    try {
      tbl = toml::parse_file(toml_path);
    } catch (const toml::parse_error& err) {
      return fmt::format("config file {}: {} (line {})", toml_path, err.description(), err.source().begin.line);
    }
    std::string failure;
    // Keys are "section.name"; nested tables flatten with dots.
    std::function<void(const toml::table&, const std::string&)> walk = [&](const toml::table& t,
                                                                           const std::string& prefix) {
      for (auto&& [k, node] : t) {
        if (!failure.empty()) return;
        std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
        if (auto* sub = node.as_table()) {
          walk(*sub, key);
          continue;
        }
        std::string text;
        if (auto s = node.value<std::string>(); node.is_string())
          text = *s;
        else if (node.is_integer())
          text = std::to_string(*node.value<std::int64_t>());
        else if (node.is_floating_point())
          text = fmt::format("{}", *node.value<double>());
        else if (node.is_boolean())
          text = *node.value<bool>() ? "true" : "false";
        else {
          failure = fmt::format("config file {}: {}: unsupported value type", toml_path, key);
          return;
        }
        failure = apply("config file " + toml_path, key, text);
      }
    };
    walk(tbl, "");
    if (!failure.empty()) return failure;
  }
  for (auto& e : entries_) {
    std::string n = env_name(e.key);
    for (char** env = environ; env && *env; ++env) {
      std::string_view kv(*env);
      if (kv.size() > n.size() && kv.starts_with(n) && kv[n.size()] == '=') {
        if (auto f = apply("environment " + n, e.key, std::string(kv.substr(n.size() + 1))); !f.empty()) return f;
      }
    }
  }
  for (auto& [k, v] : flag_values_) {
    if (auto f = apply("flag --" + k, k, v); !f.empty()) return f;
  }
  return {};
}

std::string ConfigSchema::describe() const {
  std::string out;
  for (auto& e : entries_)
    out += fmt::format("| `{}` | {} | `{}` | `{}` | {} |\n", e.key, e.kind, e.initial, env_name(e.key), e.help);
  return out;
}

}  // namespace sf
