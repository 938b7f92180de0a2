// The command-line client of the REST API: `streamflex streams|keys|tokens|apikeys|deliveries ...`
// against --api URL (default http://127.0.0.1:8090, env STREAMFLEX_API_URL) with the key from
// --api-key or env STREAMFLEX_API_KEY. `streamflex keys ...` stays local (the store file) unless
// --api is given. Prints the API's JSON; a created secret also alone on the last line.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sf::app {

struct ApiCli {
  std::string api_url = "http://127.0.0.1:8090";
  std::string api_key;
  std::string command;  // "streams list", "keys rotate", ...
  std::string name, id;
  std::optional<std::string> visibility, profile, latency;
  std::optional<std::int64_t> part_target_ms, segment_target_ms, grace_s, ttl_s, limit;
  std::optional<bool> takeover;
  std::string client_ip;
  std::vector<std::string> scopes;
  CLI::Option* api_option_on_keys = nullptr;  // set: `keys` goes to the API
  std::vector<CLI::App*> remote_keys;         // keys subcommands that exist only remotely
};

// Adds streams, tokens, apikeys and deliveries; adds --api/--api-key and `rotate` to `keys`.
void add_api_cli(CLI::App& app, CLI::App& keys, ApiCli& cli);
// True if `keys ...` was asked with --api (or is rotate), so run_api_cli handles it.
bool keys_are_remote(const ApiCli& cli);
bool api_cli_parsed(const ApiCli& cli);
int run_api_cli(ApiCli& cli);

}  // namespace sf::app
