#include "sf/api/api.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sf/api/http_call.h"
#include "sf/core/log.h"
#include "sf/http/server.h"

namespace sf::api {
namespace {

using nlohmann::json;
namespace asio = boost::asio;

constexpr std::size_t kMaxQueued = 256;  // requests waiting for a worker
// Bodies up to api.max_body_bytes + this much are read and refused by the API (JSON 413); larger
// ones are refused by the HTTP server from their Content-Length, before any byte is buffered.
constexpr std::size_t kServerBodySlack = 64 * 1024;
constexpr std::int64_t kMaxGraceS = 30 * 24 * 3600;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

http::Response error(int status, std::string_view message) {
  auto r = http::Response::json(status, json{{"error", message}}.dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

http::Response ok(int status, const json& body) {
  auto r = http::Response::json(status, body.dump());
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

http::Response no_content() {
  http::Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

// Percent-decoding of one path segment; nullopt if malformed or it decodes to '/' or NUL.
std::optional<std::string> decode_segment(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    auto hexval = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '/' || c == '\0') return std::nullopt;
    out += c;
    i += 2;
  }
  return out;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

std::string query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

struct Call {
  std::string method, path, query, body, authorization;
  std::vector<std::string> params;  // the {placeholders} of the route, in order, decoded
  auth::ApiKeyRecord key;
  json in;  // the parsed body (an object) for routes that take one
};

using Fn = http::Response (*)(Api::Impl&, Call&);

struct RouteDef {
  RouteInfo info;
  Fn fn;
  bool takes_body = false;
};

const std::vector<RouteDef>& route_defs();

}  // namespace

struct Api::Impl {
  Impl(net::IoPool& pool, Config cfg, auth::Store& store, auth::KeyStore& publish_check, LiveSource live,
       TokenIssuer tokens)
      : config(std::move(cfg)),
        store(store),
        publish_check(publish_check),
        live(std::move(live)),
        tokens(std::move(tokens)),
        workers(static_cast<std::size_t>(std::max<std::int64_t>(1, config.workers))) {
    if (config.rtmp_url.empty()) config.rtmp_url = "rtmp://127.0.0.1:1935/live";
    if (config.playback_url.empty()) config.playback_url = "http://127.0.0.1:8081";
    auto ep = net::parse_endpoint(config.listen);
    if (!ep) throw std::runtime_error("api.listen: expected host:port, got '" + config.listen + "'");
    http::ServerLimits limits;
    limits.max_body_bytes = server_body_limit();
    server = std::make_unique<http::Server>(pool, *ep, limits);
  }

  Config config;
  auth::Store& store;
  auth::KeyStore& publish_check;
  LiveSource live;
  TokenIssuer tokens;
  asio::thread_pool workers;
  std::unique_ptr<http::Server> server;
  std::atomic<std::size_t> queued{0};
  std::map<std::string, std::pair<std::string, Bytes>> web_files;

  std::size_t server_body_limit() const { return static_cast<std::size_t>(config.max_body_bytes) + kServerBodySlack; }

  Disconnect disconnect_fn;  // set before start()

  void disconnect(std::string_view stream, std::string_view key_id, std::string_view reason) {
    if (!disconnect_fn) return;
    try {
      disconnect_fn(stream, key_id, reason);
    } catch (const std::exception& e) {
      log::warn("api", "live publisher not disconnected", {{"stream", stream}, {"error", e.what()}});
    }
  }

  std::map<std::string, LiveState> live_now() {
    if (!live) return {};
    try {
      return live();
    } catch (const std::exception& e) {
      log::warn("api", "live state unavailable", {{"error", e.what()}});
      return {};
    }
  }

  std::string playback_url(std::string_view name) const {
    return fmt::format("{}/live/{}/master.m3u8", config.playback_url, name);
  }

  json stream_json(const auth::StreamRecord& s, const std::map<std::string, LiveState>& live_map) const {
    json live_json{{"publishing", false},
                   {"since_ms", nullptr},
                   {"bitrate_bps", nullptr},
                   {"fps", nullptr},
                   {"keyframe_interval_s", nullptr},
                   {"width", nullptr},
                   {"height", nullptr},
                   {"video_codec", nullptr},
                   {"audio_codec", nullptr},
                   {"viewers", nullptr}};
    if (auto it = live_map.find(s.name); it != live_map.end()) {
      auto& l = it->second;
      live_json = {{"publishing", true},
                   {"since_ms", l.since_ms},
                   {"bitrate_bps", l.bitrate_bps},
                   {"fps", l.fps},
                   {"keyframe_interval_s", l.keyframe_interval_s},
                   {"width", l.width},
                   {"height", l.height},
                   {"video_codec", l.video_codec.empty() ? json(nullptr) : json(l.video_codec)},
                   {"audio_codec", l.audio_codec.empty() ? json(nullptr) : json(l.audio_codec)},
                   {"viewers", l.viewers ? json(*l.viewers) : json(nullptr)}};
    }
    return {{"name", s.name},
            {"visibility", s.visibility},
            {"profile", s.profile},
            {"latency", s.latency},
            {"part_target_ms", s.part_target_ms},
            {"segment_target_ms", s.segment_target_ms},
            {"takeover", s.takeover},
            {"created_ms", s.created_ms},
            {"updated_ms", s.updated_ms},
            {"rtmp_url", config.rtmp_url},
            {"playback_url", playback_url(s.name)},
            {"live", std::move(live_json)}};
  }

  // Runs on a worker thread.
  http::Response handle(Call& call) {
    // GET of the document is an exact route of its own; other methods reach here.
    if (call.path == "/api/openapi.json") return error(405, "method not allowed");
    auto segments = split_path(call.path);
    bool path_known = false;
    const RouteDef* match = nullptr;
    for (auto& def : route_defs()) {
      auto tmpl = split_path(def.info.path);
      if (tmpl.size() != segments.size()) continue;
      std::vector<std::string> params;
      bool same = true;
      for (std::size_t i = 0; i < tmpl.size() && same; ++i) {
        if (tmpl[i].starts_with('{')) {
          auto decoded = decode_segment(segments[i]);
          if (!decoded || decoded->empty())
            same = false;
          else
            params.push_back(std::move(*decoded));
        } else {
          same = tmpl[i] == segments[i];
        }
      }
      if (!same) continue;
      path_known = true;
      if (def.info.method != call.method) continue;
      match = &def;
      call.params = std::move(params);
      break;
    }
    if (!match) return path_known ? error(405, "method not allowed") : error(404, "no such route");
    if (match->info.authenticated) {
      std::string_view auth = call.authorization;
      constexpr std::string_view bearer = "Bearer ";
      if (auth.size() <= bearer.size() || !std::equal(bearer.begin(), bearer.end(), auth.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          }))
        return error(401, "an API key is required: Authorization: Bearer <key>");
      auto key = store.check_api_key(auth.substr(bearer.size()));
      if (!key) {
        if (key.error() == errc::unauthorized) return error(401, "API key not accepted");
        return error(503, "store unavailable");
      }
      call.key = std::move(*key);
      if (!match->info.scopes.empty()) {
        bool allowed = false;
        for (auto& s : match->info.scopes) allowed = allowed || call.key.has_scope(s);
        if (!allowed) {
          std::string need;
          for (auto& s : match->info.scopes) need += (need.empty() ? "" : " or ") + s;
          return error(403, "this API key lacks the scope for this route (needs " + need + ")");
        }
      }
    }
    if (match->takes_body) {
      if (call.body.size() > static_cast<std::size_t>(config.max_body_bytes))
        return error(413, fmt::format("request body above {} bytes", config.max_body_bytes));
      if (call.body.empty()) {
        call.in = json::object();
      } else {
        call.in = json::parse(call.body, nullptr, false);
        if (call.in.is_discarded()) return error(400, "request body is not valid JSON");
        if (!call.in.is_object()) return error(400, "request body must be a JSON object");
      }
    }
    return match->fn(*this, call);
  }

  void load_web_root() {
    namespace fs = std::filesystem;
    if (config.web_root.empty()) return;
    std::error_code ec;
    if (!fs::is_directory(config.web_root, ec)) {
      log::warn("api", "dashboard files not found; / is not served", {{"web_root", config.web_root}});
      return;
    }
    for (auto& e : fs::recursive_directory_iterator(config.web_root, ec)) {
      if (!e.is_regular_file() || e.file_size() > 16 * 1024 * 1024) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::string data((std::istreambuf_iterator<char>(in)), {});
      auto rel = "/" + fs::relative(e.path(), config.web_root).generic_string();
      auto ext = e.path().extension().string();
      std::string type = ext == ".html"                    ? "text/html; charset=utf-8"
                         : ext == ".js"                    ? "text/javascript; charset=utf-8"
                         : ext == ".css"                   ? "text/css; charset=utf-8"
                         : ext == ".svg"                   ? "image/svg+xml"
                         : ext == ".png"                   ? "image/png"
                         : ext == ".ico"                   ? "image/x-icon"
                         : ext == ".map" || ext == ".json" ? "application/json"
                                                           : "application/octet-stream";
      web_files[rel] = {type, Bytes::copy_of(as_bytes(data))};
    }
    log::info("api", "dashboard served at /", {{"web_root", config.web_root}, {"files", web_files.size()}});
  }
};

namespace {

// Setting fields shared by POST and PATCH; returns "" or what is wrong.
std::string apply_settings(const json& in, auth::StreamRecord& s, bool allow_name,
                           const std::vector<std::string>& profiles) {
  for (auto& [field, value] : in.items()) {
    if (field == "name") {
      if (!allow_name && !(value.is_string() && value.get<std::string>() == s.name)) return "name cannot change";
      if (!value.is_string()) return "name: expected a string";
      s.name = value.get<std::string>();
    } else if (field == "visibility" || field == "profile" || field == "latency") {
      if (!value.is_string()) return field + ": expected a string";
      auto v = value.get<std::string>();
      (field == "visibility" ? s.visibility : field == "profile" ? s.profile : s.latency) = v;
    } else if (field == "part_target_ms" || field == "segment_target_ms") {
      if (!value.is_number_integer()) return field + ": expected an integer";
      (field == "part_target_ms" ? s.part_target_ms : s.segment_target_ms) = value.get<std::int64_t>();
    } else if (field == "takeover") {
      if (!value.is_boolean()) return "takeover: expected true or false";
      s.takeover = value.get<bool>();
    } else if (field == "created_ms" || field == "updated_ms" || field == "rtmp_url" || field == "playback_url" ||
               field == "live") {
      // Read-only fields a client may send back unchanged; ignored.
    } else {
      return "unknown field '" + field + "'";
    }
  }
  std::string why;
  if (!auth::validate_stream(s, why)) return why;
  if (!profiles.empty() && s.profile != "default" && std::ranges::find(profiles, s.profile) == profiles.end()) {
    std::string known;
    for (auto& p : profiles) known += (known.empty() ? "" : ", ") + p;
    return "profile: one of " + known;
  }
  return {};
}

http::Response store_error(const std::error_code& ec, std::string_view what) {
  if (ec == errc::not_found) return error(404, fmt::format("no such {}", what));
  if (ec == errc::conflict) return error(409, fmt::format("{} conflicts with its current state", what));
  if (ec == errc::invalid_argument) return error(400, fmt::format("invalid {}", what));
  return error(503, "store unavailable");
}

bool valid_name_param(const std::string& name) {
  return auth::valid_stream_name(name);
}

json key_json(const auth::StreamKeyRecord& k, std::int64_t now) {
  json j{{"id", k.id},
         {"created_ms", k.created_ms},
         {"expires_ms", nullptr},
         {"revoked_ms", nullptr},
         {"state", k.state(now)}};
  if (k.expires_ms) j["expires_ms"] = *k.expires_ms;
  if (k.revoked_ms) j["revoked_ms"] = *k.revoked_ms;
  return j;
}

json api_key_json(const auth::ApiKeyRecord& k) {
  json j{{"id", k.id}, {"name", k.name}, {"scopes", k.scopes}, {"created_ms", k.created_ms}, {"revoked_ms", nullptr}};
  if (k.revoked_ms) j["revoked_ms"] = *k.revoked_ms;
  return j;
}

http::Response whoami(Api::Impl&, Call& c) {
  return ok(200, {{"id", c.key.id}, {"name", c.key.name}, {"scopes", c.key.scopes}});
}

http::Response list_streams(Api::Impl& api, Call&) {
  auto list = api.store.list_streams();
  if (!list) return store_error(list.error(), "stream");
  auto live = api.live_now();
  json out = json::array();
  for (auto& s : *list) out.push_back(api.stream_json(s, live));
  return ok(200, {{"streams", std::move(out)}});
}

http::Response create_stream(Api::Impl& api, Call& c) {
  auth::StreamRecord s;
  if (!c.in.contains("name")) return error(400, "name is required");
  if (auto why = apply_settings(c.in, s, true, api.config.profiles); !why.empty()) return error(400, why);
  auto key = api.store.create_stream(s);
  if (!key) {
    if (key.error() == errc::conflict) return error(409, "a stream with this name exists");
    return store_error(key.error(), "stream");
  }
  auto rec = api.store.get_stream(s.name);
  if (!rec) return store_error(rec.error(), "stream");
  log::info("api", "stream created", {{"stream", s.name}, {"key_id", key->id}, {"by", c.key.id}});
  return ok(201, {{"stream", api.stream_json(*rec, api.live_now())}, {"key", {{"id", key->id}, {"key", key->secret}}}});
}

http::Response get_stream(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  auto rec = api.store.get_stream(c.params[0]);
  if (!rec) return store_error(rec.error(), "stream");
  return ok(200, api.stream_json(*rec, api.live_now()));
}

http::Response patch_stream(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  auto rec = api.store.get_stream(c.params[0]);
  if (!rec) return store_error(rec.error(), "stream");
  if (auto why = apply_settings(c.in, *rec, false, api.config.profiles); !why.empty()) return error(400, why);
  auto updated = api.store.update_stream(*rec);
  if (!updated) return store_error(updated.error(), "stream");
  log::info("api", "stream updated", {{"stream", rec->name}, {"by", c.key.id}});
  return ok(200, api.stream_json(*updated, api.live_now()));
}

http::Response delete_stream(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  if (auto r = api.store.delete_stream(c.params[0]); !r) return store_error(r.error(), "stream");
  log::info("api", "stream deleted", {{"stream", c.params[0]}, {"by", c.key.id}});
  api.disconnect(c.params[0], "", "stream_deleted");
  return no_content();
}

http::Response list_keys(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  auto keys = api.store.list_stream_keys(c.params[0]);
  if (!keys) return store_error(keys.error(), "stream");
  auto now = now_ms();
  json out = json::array();
  for (auto& k : *keys) out.push_back(key_json(k, now));
  return ok(200, {{"keys", std::move(out)}});
}

http::Response create_key(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  auto key = api.store.create_stream_key(c.params[0]);
  if (!key) return store_error(key.error(), "stream");
  log::info("api", "stream key created", {{"stream", c.params[0]}, {"key_id", key->id}, {"by", c.key.id}});
  return ok(201, {{"id", key->id}, {"key", key->secret}});
}

http::Response rotate_key(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  std::int64_t grace_s = api.config.rotate_grace.count() / 1000;
  if (c.in.contains("grace_s")) {
    auto& g = c.in["grace_s"];
    if (!g.is_number_integer() || g.get<std::int64_t>() < 0 || g.get<std::int64_t>() > kMaxGraceS)
      return error(400, fmt::format("grace_s: an integer from 0 to {}", kMaxGraceS));
    grace_s = g.get<std::int64_t>();
  }
  for (auto& [field, value] : c.in.items())
    if (field != "grace_s") return error(400, "unknown field '" + field + "'");
  auto r = api.store.rotate_stream_key(c.params[0], c.params[1], grace_s * 1000);
  if (!r) {
    if (r.error() == errc::conflict) return error(409, "only an active key can be rotated");
    return store_error(r.error(), "stream key");
  }
  log::info("api", "stream key rotated",
            {{"stream", c.params[0]},
             {"old_key_id", r->old_id},
             {"key_id", r->key.id},
             {"grace_s", grace_s},
             {"by", c.key.id}});
  return ok(
      201,
      {{"id", r->key.id}, {"key", r->key.secret}, {"old", {{"id", r->old_id}, {"expires_ms", r->old_expires_ms}}}});
}

http::Response revoke_key(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  if (auto r = api.store.revoke_stream_key(c.params[0], c.params[1]); !r) {
    if (r.error() == errc::conflict) return error(409, "this key is already revoked");
    return store_error(r.error(), "stream key");
  }
  log::info("api", "stream key revoked", {{"stream", c.params[0]}, {"key_id", c.params[1]}, {"by", c.key.id}});
  api.disconnect(c.params[0], c.params[1], "key_revoked");
  return no_content();
}

http::Response issue_token(Api::Impl& api, Call& c) {
  if (!valid_name_param(c.params[0])) return error(400, "invalid stream name");
  std::int64_t ttl = std::max<std::int64_t>(1, api.config.token_ttl.count() / 1000);
  const std::int64_t max_ttl = std::max<std::int64_t>(1, api.config.max_token_ttl.count() / 1000);
  std::string client_ip;
  for (auto& [field, value] : c.in.items()) {
    if (field == "ttl_s") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > max_ttl)
        return error(400, fmt::format("ttl_s: an integer from 1 to {}", max_ttl));
      ttl = value.get<std::int64_t>();
    } else if (field == "client_ip") {
      if (!value.is_string()) return error(400, "client_ip: expected a string");
      client_ip = value.get<std::string>();
      boost::system::error_code ec;
      if (!client_ip.empty()) {
        auto addr = asio::ip::make_address(client_ip, ec);
        if (ec) return error(400, "client_ip: not an IP address");
        client_ip = addr.to_string();
      }
    } else {
      return error(400, "unknown field '" + field + "'");
    }
  }
  auto rec = api.store.get_stream(c.params[0]);
  if (!rec) return store_error(rec.error(), "stream");
  if (!api.tokens) return error(503, "viewer tokens are not configured");
  std::int64_t expires_s = now_ms() / 1000 + ttl;
  auto token = api.tokens(rec->name, expires_s, client_ip);
  log::info("api", "viewer token issued",
            {{"stream", rec->name}, {"expires_s", expires_s}, {"ip_bound", !client_ip.empty()}, {"by", c.key.id}});
  return ok(201, {{"token", token},
                  {"expires_ms", expires_s * 1000},
                  {"playback_url", api.playback_url(rec->name) + "?token=" + token}});
}

http::Response list_api_keys(Api::Impl& api, Call&) {
  auto list = api.store.list_api_keys();
  if (!list) return store_error(list.error(), "API key");
  json out = json::array();
  for (auto& k : *list) out.push_back(api_key_json(k));
  return ok(200, {{"apikeys", std::move(out)}});
}

http::Response get_api_key(Api::Impl& api, Call& c) {
  auto list = api.store.list_api_keys();
  if (!list) return store_error(list.error(), "API key");
  for (auto& k : *list)
    if (k.id == c.params[0]) return ok(200, api_key_json(k));
  return error(404, "no such API key");
}

http::Response create_api_key(Api::Impl& api, Call& c) {
  std::string name;
  std::vector<std::string> scopes;
  for (auto& [field, value] : c.in.items()) {
    if (field == "name") {
      if (!value.is_string() || value.get<std::string>().empty() || value.get<std::string>().size() > 128)
        return error(400, "name: a string of 1-128 characters");
      name = value.get<std::string>();
    } else if (field == "scopes") {
      if (!value.is_array() || value.empty()) return error(400, "scopes: a non-empty array");
      for (auto& s : value) {
        if (!s.is_string() || !auth::valid_scope(s.get<std::string>()))
          return error(400, "scopes: each one of admin, streams, tokens, ingest");
        scopes.push_back(s.get<std::string>());
      }
    } else {
      return error(400, "unknown field '" + field + "'");
    }
  }
  if (name.empty()) return error(400, "name is required");
  if (scopes.empty()) return error(400, "scopes is required");
  auto key = api.store.create_api_key(name, scopes);
  if (!key) return store_error(key.error(), "API key");
  log::info("api", "API key created", {{"api_key_id", key->id}, {"scopes", scopes}, {"by", c.key.id}});
  return ok(201, {{"id", key->id}, {"key", key->secret}, {"name", name}, {"scopes", scopes}});
}

http::Response revoke_api_key(Api::Impl& api, Call& c) {
  if (auto r = api.store.revoke_api_key(c.params[0]); !r) return store_error(r.error(), "API key");
  log::info("api", "API key revoked", {{"api_key_id", c.params[0]}, {"by", c.key.id}});
  return no_content();
}

http::Response list_deliveries(Api::Impl& api, Call& c) {
  std::size_t limit = 100;
  if (auto l = query_value(c.query, "limit"); !l.empty()) {
    try {
      auto n = std::stoll(l);
      if (n < 1 || n > 1000) throw std::out_of_range("limit");
      limit = static_cast<std::size_t>(n);
    } catch (const std::exception&) {
      return error(400, "limit: an integer from 1 to 1000");
    }
  }
  auto list = api.store.list_deliveries(limit);
  if (!list) return store_error(list.error(), "delivery");
  json out = json::array();
  for (auto& d : *list)
    out.push_back({{"id", d.id},
                   {"event", d.event},
                   {"stream", d.stream},
                   {"url", d.url},
                   {"state", d.state},
                   {"outcome", d.outcome.empty() ? json(nullptr) : json(d.outcome)},
                   {"attempts", d.attempts},
                   {"last_status", d.last_status ? json(d.last_status) : json(nullptr)},
                   {"last_error", d.last_error.empty() ? json(nullptr) : json(d.last_error)},
                   {"created_ms", d.created_ms},
                   {"updated_ms", d.updated_ms}});
  return ok(200, {{"deliveries", std::move(out)}});
}

http::Response ingest_check(Api::Impl& api, Call& c) {
  auth::PublishRequest req;
  for (auto& [field, value] : c.in.items()) {
    if (!value.is_string()) return error(400, field + ": expected a string");
    if (field == "key")
      req.key = value.get<std::string>();
    else if (field == "app")
      req.app = value.get<std::string>();
    else if (field == "addr")
      req.remote = value.get<std::string>();
    else
      return error(400, "unknown field '" + field + "'");
  }
  if (req.key.empty()) return error(400, "key is required");
  auto grant = api.publish_check.check_publish(req);
  if (!grant) {
    if (grant.error() == errc::unauthorized) return ok(200, {{"allow", false}});
    return error(503, "store unavailable");
  }
  return ok(200, {{"allow", true},
                  {"stream", grant->stream},
                  {"key_id", grant->key_id},
                  {"takeover", grant->takeover},
                  {"profile", grant->profile},
                  {"latency", grant->latency},
                  {"part_target_ms", grant->part_target_ms},
                  {"segment_target_ms", grant->segment_target_ms}});
}

const std::vector<RouteDef>& route_defs() {
  static const std::vector<RouteDef> defs = [] {
    const std::vector<std::string> any{}, streams{"streams"}, read_streams{"streams", "tokens"}, tokens{"tokens"},
        admin{"admin"}, ingest{"ingest"};
    return std::vector<RouteDef>{
        {{"GET", "/api/whoami", any}, whoami},
        {{"GET", "/api/streams", read_streams}, list_streams},
        {{"POST", "/api/streams", streams}, create_stream, true},
        {{"GET", "/api/streams/{name}", read_streams}, get_stream},
        {{"PATCH", "/api/streams/{name}", streams}, patch_stream, true},
        {{"DELETE", "/api/streams/{name}", streams}, delete_stream},
        {{"GET", "/api/streams/{name}/keys", streams}, list_keys},
        {{"POST", "/api/streams/{name}/keys", streams}, create_key, true},
        {{"POST", "/api/streams/{name}/keys/{id}/rotate", streams}, rotate_key, true},
        {{"DELETE", "/api/streams/{name}/keys/{id}", streams}, revoke_key},
        {{"POST", "/api/streams/{name}/tokens", tokens}, issue_token, true},
        {{"GET", "/api/apikeys", admin}, list_api_keys},
        {{"POST", "/api/apikeys", admin}, create_api_key, true},
        {{"GET", "/api/apikeys/{id}", admin}, get_api_key},
        {{"DELETE", "/api/apikeys/{id}", admin}, revoke_api_key},
        {{"GET", "/api/webhooks/deliveries", streams}, list_deliveries},
        {{"POST", "/api/ingest/check", ingest}, ingest_check, true},
    };
  }();
  return defs;
}

// The held handler: copies what the worker needs and queues it; the worker answers.
void dispatch(std::shared_ptr<Api::Impl> impl, const http::Request& req, http::Responder respond) {
  if (impl->queued.load() >= kMaxQueued) {
    respond(error(503, "too many requests in progress"));
    return;
  }
  ++impl->queued;
  Call call;
  call.method = req.method == "HEAD" ? "GET" : req.method;
  call.path = req.path;
  call.query = req.query;
  call.body = req.body;
  call.authorization = req.header("Authorization");
  asio::post(impl->workers, [impl, call = std::move(call), respond]() mutable {
    http::Response r;
    try {
      r = impl->handle(call);
    } catch (const std::exception& e) {
      log::error("api", "request failed", {{"path", call.path}, {"error", e.what()}});
      r = error(500, "internal error");
    }
    --impl->queued;
    respond(std::move(r));
  });
}

}  // namespace

const std::vector<RouteInfo>& routes() {
  static const std::vector<RouteInfo> list = [] {
    std::vector<RouteInfo> out{{"GET", "/api/openapi.json", {}, false}};
    for (auto& d : route_defs()) out.push_back(d.info);
    return out;
  }();
  return list;
}

Api::Api(net::IoPool& pool, Config config, auth::Store& store, auth::KeyStore& publish_check, LiveSource live,
         TokenIssuer tokens)
    : impl_(std::make_shared<Impl>(pool, std::move(config), store, publish_check, std::move(live), std::move(tokens))) {
  auto& server = *impl_->server;
  server.route("GET", "/api/openapi.json", [](const http::Request&) {
    auto r = http::Response::json(200, openapi_document());
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  });
  server.body_limit("/api/", impl_->server_body_limit());
  std::weak_ptr<Impl> weak = impl_;
  for (const char* method : {"GET", "POST", "PATCH", "DELETE", "PUT"}) {
    server.route_held(method, "/api/", std::chrono::seconds(30), error(503, "the API did not answer in time"),
                      [weak](const http::Request& req, http::Responder respond) {
                        if (auto impl = weak.lock())
                          dispatch(std::move(impl), req, std::move(respond));
                        else
                          respond(error(503, "shutting down"));
                      });
  }
  impl_->load_web_root();
  if (!impl_->web_files.empty()) {
    server.route_prefix("GET", "/", [weak](const http::Request& req) {
      auto impl = weak.lock();
      if (!impl) return http::Response::text(503, "shutting down\n");
      if (req.path == "/api") return error(404, "no such route");
      auto it = impl->web_files.find(req.path == "/" ? "/index.html" : req.path);
      // Client-side routes (no file extension) get the application page.
      if (it == impl->web_files.end() && req.path.find('.', req.path.rfind('/')) == std::string::npos)
        it = impl->web_files.find("/index.html");
      if (it == impl->web_files.end()) return http::Response::text(404, "not found\n");
      http::Response r;
      r.content_type = it->second.first;
      r.pieces.push_back(it->second.second);
      r.headers.emplace_back("Cache-Control", "no-cache");
      return r;
    });
  }
}

Api::~Api() {
  impl_->workers.join();
}

void Api::set_disconnect(Disconnect disconnect) {
  impl_->disconnect_fn = std::move(disconnect);
}

void Api::start() {
  impl_->server->start();
}

void Api::stop() {
  impl_->server->stop();
  impl_->workers.stop();
}

std::uint16_t Api::port() const {
  return impl_->server->port();
}

LiveSource remote_live_source(std::string admin_url) {
  struct Cache {
    std::mutex mu;
    std::chrono::steady_clock::time_point at{};
    std::map<std::string, LiveState> value;
  };
  auto cache = std::make_shared<Cache>();
  return [cache, url = std::move(admin_url)]() -> std::map<std::string, LiveState> {
    std::lock_guard lock(cache->mu);
    auto now = std::chrono::steady_clock::now();
    if (now - cache->at < std::chrono::seconds(1)) return cache->value;
    cache->at = now;
    cache->value.clear();
    auto r = http_call("GET", url + "/ingest/streams", {}, {}, std::chrono::milliseconds(1500));
    if (!r || r->status != 200) return cache->value;
    auto j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("streams") || !j["streams"].is_array()) return cache->value;
    for (auto& s : j["streams"]) {
      if (!s.is_object() || !s.contains("stream") || !s["stream"].is_string()) continue;
      LiveState l;
      l.since_ms = s.value("started_ms", std::int64_t{0});
      if (s.contains("stats") && s["stats"].is_object()) {
        auto& st = s["stats"];
        l.bitrate_bps = st.value("bitrate_bps", 0.0);
        l.fps = st.value("fps", 0.0);
        l.keyframe_interval_s = st.value("keyframe_interval_s", 0.0);
      }
      if (s.contains("video") && s["video"].is_object()) {
        l.video_codec = s["video"].value("codec", "");
        l.width = s["video"].value("width", 0);
        l.height = s["video"].value("height", 0);
      }
      if (s.contains("audio") && s["audio"].is_object()) l.audio_codec = s["audio"].value("codec", "");
      cache->value[s["stream"].get<std::string>()] = std::move(l);
    }
    return cache->value;
  };
}

}  // namespace sf::api
