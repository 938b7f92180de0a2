#include "api_cli.h"

#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "sf/api/http_call.h"

namespace sf::app {
namespace {

using nlohmann::json;

void add_connection_options(CLI::App* sub, ApiCli& cli, CLI::Option** api_opt = nullptr) {
  auto* o = sub->add_option("--api", cli.api_url, "API base URL (env STREAMFLEX_API_URL)");
  if (api_opt) *api_opt = o;
  sub->add_option("--api-key", cli.api_key, "API key (env STREAMFLEX_API_KEY)");
}

void add_settings(CLI::App* sub, ApiCli& cli) {
  sub->add_option("--visibility", cli.visibility, "public or token");
  sub->add_option("--profile", cli.profile, "Ladder profile, or passthrough");
  sub->add_option("--latency", cli.latency, "ll-hls or hls");
  sub->add_option("--part-target-ms", cli.part_target_ms, "LL-HLS part target");
  sub->add_option("--segment-target-ms", cli.segment_target_ms, "Segment target");
  sub->add_option("--takeover", cli.takeover, "true: a new publisher replaces a live one");
}

CLI::App* leaf(CLI::App* parent, ApiCli& cli, const std::string& group, const std::string& name,
               const std::string& help) {
  auto* sub = parent->add_subcommand(name, help);
  sub->callback([&cli, c = group + " " + name] { cli.command = c; });
  return sub;
}

int call(const ApiCli& cli, const std::string& method, const std::string& path, const json& body,
         const char* secret_field = nullptr, const char* secret_at = "") {
  if (cli.api_key.empty()) {
    std::fprintf(stderr, "streamflex: an API key is needed: --api-key or STREAMFLEX_API_KEY\n");
    return 2;
  }
  std::vector<std::pair<std::string, std::string>> headers{{"Authorization", "Bearer " + cli.api_key}};
  std::string payload;
  if (!body.is_null()) {
    headers.emplace_back("Content-Type", "application/json");
    payload = body.dump();
  }
  auto base = cli.api_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  auto r = sf::api::http_call(method, base + path, std::move(headers), std::move(payload), std::chrono::seconds(15));
  if (!r) {
    std::fprintf(stderr, "streamflex: cannot reach the API at %s: %s\n", cli.api_url.c_str(),
                 r.error().message().c_str());
    return 1;
  }
  auto j = r->body.empty() ? json() : json::parse(r->body, nullptr, false);
  if (r->status >= 400) {
    std::string why =
        j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : r->body;
    std::fprintf(stderr, "streamflex: %s %s: HTTP %d: %s\n", method.c_str(), path.c_str(), r->status, why.c_str());
    return 1;
  }
  if (r->status == 204) {
    std::printf("done\n");
    return 0;
  }
  std::printf("%s\n", j.is_discarded() ? r->body.c_str() : j.dump(2).c_str());
  if (secret_field && j.is_object() && j.contains(json::json_pointer(secret_at)) &&
      j[json::json_pointer(secret_at)].is_string()) {
    std::printf("%s (shown once; keep it secret):\n%s\n", secret_field,
                j[json::json_pointer(secret_at)].get<std::string>().c_str());
  }
  return 0;
}

json settings_body(const ApiCli& cli) {
  json b = json::object();
  if (cli.visibility) b["visibility"] = *cli.visibility;
  if (cli.profile) b["profile"] = *cli.profile;
  if (cli.latency) b["latency"] = *cli.latency;
  if (cli.part_target_ms) b["part_target_ms"] = *cli.part_target_ms;
  if (cli.segment_target_ms) b["segment_target_ms"] = *cli.segment_target_ms;
  if (cli.takeover) b["takeover"] = *cli.takeover;
  return b;
}

}  // namespace

void add_api_cli(CLI::App& app, CLI::App& keys, ApiCli& cli) {
  if (const char* env = std::getenv("STREAMFLEX_API_URL")) cli.api_url = env;
  if (const char* env = std::getenv("STREAMFLEX_API_KEY")) cli.api_key = env;

  auto* streams = app.add_subcommand("streams", "Streams, through the API (--api, --api-key)");
  streams->require_subcommand(1);
  auto* sl = leaf(streams, cli, "streams", "list", "List streams with their live state");
  auto* sg = leaf(streams, cli, "streams", "get", "Show one stream");
  sg->add_option("name", cli.name, "Stream name")->required();
  auto* sc = leaf(streams, cli, "streams", "create", "Create a stream; prints its first key alone on the last line");
  sc->add_option("name", cli.name, "Stream name")->required();
  add_settings(sc, cli);
  auto* su = leaf(streams, cli, "streams", "update", "Change a stream's settings");
  su->add_option("name", cli.name, "Stream name")->required();
  add_settings(su, cli);
  auto* sd = leaf(streams, cli, "streams", "delete", "Delete a stream and its keys");
  sd->add_option("name", cli.name, "Stream name")->required();
  for (auto* s : {sl, sg, sc, su, sd}) add_connection_options(s, cli);

  auto* kr = keys.add_subcommand("rotate", "Replace a stream key; the old one works for --grace seconds (API)");
  kr->add_option("stream", cli.name, "Stream name")->required();
  kr->add_option("id", cli.id, "Key id")->required();
  kr->add_option("--grace", cli.grace_s, "Seconds the old key keeps working (default: api.rotate_grace)");
  kr->callback([&cli] { cli.command = "keys rotate"; });
  add_connection_options(kr, cli);
  cli.remote_keys.push_back(kr);
  for (auto* k : keys.get_subcommands({})) {
    if (k == kr) continue;
    CLI::Option* api_opt = nullptr;
    add_connection_options(k, cli, &api_opt);
    api_opt->description("Use the API at this URL instead of the local store");
    k->parse_complete_callback([&cli, k, api_opt] {
      if (api_opt->count() > 0) {
        cli.api_option_on_keys = api_opt;
        cli.command = "keys " + k->get_name();
      }
    });
  }

  auto* tokens = app.add_subcommand("tokens", "Viewer tokens, through the API");
  tokens->require_subcommand(1);
  auto* tc = leaf(tokens, cli, "tokens", "create", "Issue a viewer token; prints the token alone on the last line");
  tc->add_option("stream", cli.name, "Stream name")->required();
  tc->add_option("--ttl", cli.ttl_s, "Lifetime in seconds (default: api.token_ttl)");
  tc->add_option("--client-ip", cli.client_ip, "Bind the token to this viewer address");
  add_connection_options(tc, cli);

  auto* apikeys = app.add_subcommand("apikeys", "API keys, through the API (admin scope)");
  apikeys->require_subcommand(1);
  auto* al = leaf(apikeys, cli, "apikeys", "list", "List API keys (never the keys)");
  auto* ac = leaf(apikeys, cli, "apikeys", "create", "Create an API key; prints it alone on the last line");
  ac->add_option("name", cli.name, "What the key is for")->required();
  ac->add_option("--scope", cli.scopes, "admin, streams, tokens or ingest (repeatable)")->required();
  auto* ar = leaf(apikeys, cli, "apikeys", "revoke", "Revoke an API key");
  ar->add_option("id", cli.id, "API key id")->required();
  for (auto* s : {al, ac, ar}) add_connection_options(s, cli);

  auto* deliveries = app.add_subcommand("deliveries", "Recent webhook deliveries, through the API");
  deliveries->add_option("--limit", cli.limit, "How many (1-1000)");
  deliveries->callback([&cli] { cli.command = "deliveries"; });
  add_connection_options(deliveries, cli);
}

bool keys_are_remote(const ApiCli& cli) {
  return cli.command.starts_with("keys ");
}

bool api_cli_parsed(const ApiCli& cli) {
  return !cli.command.empty();
}

int run_api_cli(ApiCli& cli) {
  const auto& c = cli.command;
  const std::string stream_path = "/api/streams/" + cli.name;
  if (c == "streams list") return call(cli, "GET", "/api/streams", nullptr);
  if (c == "streams get") return call(cli, "GET", stream_path, nullptr);
  if (c == "streams create") {
    auto body = settings_body(cli);
    body["name"] = cli.name;
    return call(cli, "POST", "/api/streams", body, "stream key", "/key/key");
  }
  if (c == "streams update") return call(cli, "PATCH", stream_path, settings_body(cli));
  if (c == "streams delete") return call(cli, "DELETE", stream_path, nullptr);
  if (c == "keys list") {
    if (cli.name.empty()) {
      std::fprintf(stderr, "streamflex keys list --api: give the stream: keys list <stream> --api URL\n");
      return 2;
    }
    return call(cli, "GET", stream_path + "/keys", nullptr);
  }
  if (c == "keys create") return call(cli, "POST", stream_path + "/keys", json::object(), "stream key", "/key");
  if (c == "keys rotate") {
    json body = json::object();
    if (cli.grace_s) body["grace_s"] = *cli.grace_s;
    return call(cli, "POST", stream_path + "/keys/" + cli.id + "/rotate", body, "stream key", "/key");
  }
  if (c == "keys revoke") {
    if (cli.id.empty()) {
      std::fprintf(stderr, "streamflex keys revoke --api: give the stream and the key id\n");
      return 2;
    }
    return call(cli, "DELETE", stream_path + "/keys/" + cli.id, nullptr);
  }
  if (c == "tokens create") {
    json body = json::object();
    if (cli.ttl_s) body["ttl_s"] = *cli.ttl_s;
    if (!cli.client_ip.empty()) body["client_ip"] = cli.client_ip;
    return call(cli, "POST", stream_path + "/tokens", body, "viewer token", "/token");
  }
  if (c == "apikeys list") return call(cli, "GET", "/api/apikeys", nullptr);
  if (c == "apikeys create")
    return call(cli, "POST", "/api/apikeys", json{{"name", cli.name}, {"scopes", cli.scopes}}, "API key", "/key");
  if (c == "apikeys revoke") return call(cli, "DELETE", "/api/apikeys/" + cli.id, nullptr);
  if (c == "deliveries") {
    std::string q = cli.limit ? "?limit=" + std::to_string(*cli.limit) : "";
    return call(cli, "GET", "/api/webhooks/deliveries" + q, nullptr);
  }
  std::fprintf(stderr, "streamflex: unknown command '%s'\n", c.c_str());
  return 2;
}

}  // namespace sf::app
