// streamflex: one executable, many roles. Parses configuration, wires the roles together and runs
// them until SIGINT/SIGTERM. The only place components meet.
#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <thread>

#include "admin.h"
#include "api_cli.h"
#include "api_role.h"
#include "app_config.h"
#include "demo.h"
#include "feeders.h"
#include "loadgen_command.h"
#include "sf/api/api.h"
#include "sf/api/remote_key_store.h"
#include "sf/api/webhooks.h"
#include "sf/auth/key_store.h"
#include "sf/auth/store.h"
#include "sf/core/log.h"
#include "sf/edge/edge.h"
#include "sf/http/server.h"
#include "sf/ingest/ingest.h"
#include "sf/net/io_pool.h"
#include "sf/origin/origin.h"
#include "transcode_file.h"
#include "transcode_role.h"
#include "viewer_auth.h"

#include <unistd.h>
#include <filesystem>

extern char** environ;

namespace sf::app {
namespace {

constexpr int kExitUsage = 2;
constexpr int kExitNotImplemented = 3;

struct Roles {
  bool ingest = false;
  bool origin = false;
  bool edge = false;
  bool api = false;
  bool transcode = false;
  bool demo = false;
};

// The player page's directory: configured, or web/dist of the source tree this binary was built
// in (build/app/streamflex -> web/dist), or ./web/dist.
std::string find_web_root(const std::string& configured) {
  namespace fs = std::filesystem;
  if (!configured.empty()) return configured;
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  for (auto candidate : {exe.parent_path() / "../../web/dist", fs::path("web/dist")})
    if (fs::is_regular_file(candidate / "index.html", ec)) return fs::weakly_canonical(candidate, ec).string();
  return {};
}

// "0.0.0.0:1935" -> "127.0.0.1:1935": a listen address as a URL host others can reach here.
std::string reachable(const std::string& listen, std::uint16_t port) {
  auto ep = net::parse_endpoint(listen);
  std::string host = ep ? ep->host : "127.0.0.1";
  if (host == "0.0.0.0" || host == "::" || host.empty()) host = "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return fmt::format("{}:{}", host, port);
}

int run_roles(const AppConfig& cfg, Roles roles, const std::string& role_name) {
  // The store, in-process for the api role and for an ingest not told to ask a remote API.
  std::unique_ptr<auth::Store> store;
  std::unique_ptr<auth::KeyStore> remote_keys;
  bool remote_ingest = roles.ingest && !roles.api && !cfg.ingest_api_url.empty();
  if (roles.api || (roles.ingest && !remote_ingest)) store = auth::open_sqlite_store(cfg.store_path);
  auto hook_cfg = cfg.webhooks;
  hook_cfg.on_publish_default_allow = cfg.webhooks_on_publish_default == "allow";
  if (hook_cfg.secret.empty() && (!hook_cfg.on_publish.empty() || !hook_cfg.on_publish_done.empty())) {
    auto path = (std::filesystem::path(cfg.store_path).parent_path() / "webhook-secret").string();
    hook_cfg.secret = load_or_create_secret(path);
    log::info("webhooks", "signing with the secret kept in a file", {{"path", path}});
  }
  auto hooks = std::make_unique<api::Webhooks>(hook_cfg, store.get());
  std::unique_ptr<auth::KeyStore> hooked;
  if (store) hooked = std::make_unique<api::HookedKeyStore>(*store, *hooks);
  if (remote_ingest) {
    api::RemoteKeyStoreConfig rc{cfg.ingest_api_url, cfg.ingest_api_key, cfg.ingest_api_cache, cfg.webhooks.timeout};
    if (const char* env = std::getenv("STREAMFLEX_INGEST_API_KEY"); env && rc.api_key.empty()) rc.api_key = env;
    remote_keys = api::make_remote_key_store(rc);
  }
  auth::KeyStore* keys = remote_keys ? remote_keys.get() : hooked.get();
  Metrics metrics;
  std::size_t threads =
      cfg.io_threads > 0 ? std::size_t(cfg.io_threads) : std::max(1u, std::thread::hardware_concurrency());
  net::IoPool pool(threads);
  std::atomic<bool> ready{false};

  auto admin_ep = net::parse_endpoint(cfg.admin_listen);
  http::Server admin(pool, *admin_ep);
  // Viewer tokens: the origin and the edge verify them with the same keys, without the API.
  std::vector<auth::TokenKey> token_keys;
  if (roles.origin || roles.edge || roles.api) token_keys = resolve_token_keys(cfg, roles.origin || roles.api);
  auto protected_streams = std::make_shared<auth::ProtectedStreams>();
  // Which streams need tokens: read from the store now (before the origin serves anything) and
  // then every auth.visibility_refresh, off the I/O threads.
  std::unique_ptr<auth::Store> visibility_store;
  std::unique_ptr<VisibilityRefresher> visibility;
  if (roles.origin) {
    visibility_store = auth::open_sqlite_store(cfg.store_path);
    visibility = std::make_unique<VisibilityRefresher>(protected_streams, protected_streams_source(*visibility_store),
                                                       cfg.visibility_refresh);
  }
  std::unique_ptr<origin::Origin> origin;
  if (roles.origin) {
    auto ocfg = cfg.origin;
    ocfg.web_root = find_web_root(ocfg.web_root);
    origin = std::make_unique<origin::Origin>(pool, ocfg, metrics);
    origin->set_viewer_access({protected_streams, std::make_shared<const auth::TokenChecker>(token_keys)});
  }
  std::unique_ptr<edge::Edge> edge;
  if (roles.edge) {
    auto ecfg = cfg.edge;
    std::string list = cfg.edge_upstreams.empty() && origin ? cfg.origin.listen : cfg.edge_upstreams;
    for (std::size_t at = 0; at < list.size();) {
      auto comma = list.find(',', at);
      auto item = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      if (!item.empty()) ecfg.upstreams.push_back(item);
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
    ecfg.token_keys = token_keys;
    if (token_keys.empty())
      log::warn("edge", "no viewer token keys (auth.token_keys): objects of token-protected streams are refused");
    edge = std::make_unique<edge::Edge>(pool, ecfg, metrics);
    if (!cfg.edge_access_log.empty()) {
      auto access = edge::open_access_log(cfg.edge_access_log, metrics);
      if (!access)
        throw std::runtime_error(
            fmt::format("edge.access_log: cannot open {}: {}", cfg.edge_access_log, access.error().message()));
      edge->set_access_log(std::move(*access));
    }
  }
  std::unique_ptr<transcode::Transcoder> transcoder;
  if (roles.transcode) {
    auto tcfg = cfg.transcode;
    tcfg.keyframe_interval = cfg.origin.segment_target;  // keyframes on the origin's segment grid
    transcoder = std::make_unique<transcode::Transcoder>(tcfg, metrics);
  }
  std::unique_ptr<ingest::Ingest> ingest;
  if (roles.ingest) ingest = std::make_unique<ingest::Ingest>(pool, cfg.ingest, *keys, metrics);
  // The transcode role alone: relays in over RTMP (ingest's server with the relay secret as its
  // key check), each stream's ladder pushed to the origin as CMAF.
  std::unique_ptr<auth::KeyStore> relay_keys;
  std::unique_ptr<push::Pusher> pusher;
  std::unique_ptr<ingest::Ingest> relays;
  if (transcoder && !roles.ingest) {
    if (cfg.push.origin_url.empty())
      throw std::runtime_error("transcode.origin_url: the transcode role needs an origin");
    if (cfg.transcode_relay_secret.empty())
      log::warn("transcode",
                "transcode.relay_secret is empty: any RTMP publisher reaching transcode.listen is "
                "transcoded and pushed");
    relay_keys = make_relay_key_store(cfg.transcode_relay_secret);
    pusher = std::make_unique<push::Pusher>(pool, cfg.push, metrics);
    auto icfg = cfg.ingest;
    icfg.rtmp_listen = cfg.transcode_listen;
    icfg.relay.clear();
    icfg.record_dir.clear();
    relays = std::make_unique<ingest::Ingest>(pool, icfg, *relay_keys, metrics);
    relays->add_observer(
        make_push_feeder(*transcoder, *pusher, cfg.origin.segment_target, !cfg.transcode_relay_secret.empty()));
  }
  // Each publish gets its stream's ladder (the store's setting, read with the key check).
  if (ingest && origin)
    ingest->add_observer(
        make_origin_feeder(*origin, transcoder.get(), [](const ingest::PublishInfo& info) { return info.profile; }));
  if (ingest && !cfg.webhooks.on_publish_done.empty()) ingest->add_observer(make_webhook_observer(*hooks));
  add_admin_routes(admin, metrics, ready, ingest ? ingest.get() : relays.get());

  pool.start();
  admin.start();
  if (origin) origin->start();
  if (edge) edge->start();
  if (ingest) ingest->start();
  if (relays) {
    relays->start();
    log::info("transcode", "taking relays",
              {{"listen", cfg.transcode_listen}, {"port", relays->port()}, {"origin", cfg.push.origin_url}});
  }
  // The API last: it tells clients the addresses the other roles actually listen on.
  std::unique_ptr<api::Api> api_server;
  if (roles.api) {
    auto acfg = cfg.api;
    acfg.web_root = find_dashboard_root(acfg.web_root);
    if (transcoder) acfg.profiles = transcoder->profiles();
    if (acfg.rtmp_url.empty())
      acfg.rtmp_url = fmt::format("rtmp://{}/live", reachable(cfg.ingest.rtmp_listen, ingest ? ingest->port() : 1935));
    if (acfg.playback_url.empty()) {
      if (edge)
        acfg.playback_url = "http://" + reachable(cfg.edge.listen, edge->port());
      else if (origin)
        acfg.playback_url = "http://" + reachable(cfg.origin.listen, origin->port());
      else
        acfg.playback_url = "http://" + reachable(cfg.edge.listen, net::parse_endpoint(cfg.edge.listen)->port);
    }
    api::LiveSource live;
    if (ingest)
      live = ingest_live_source(*ingest);
    else if (!acfg.ingest_admin_url.empty())
      live = api::remote_live_source(acfg.ingest_admin_url);
    // Viewer counts from the in-process edge (where players are sent); without one they stay null.
    if (live && edge)
      live = [inner = std::move(live), &edge] {
        auto states = inner();
        auto viewers = edge->viewers();
        for (auto& [name, state] : states) {
          auto it = viewers.find(name);
          state.viewers = it == viewers.end() ? 0 : it->second;
        }
        return states;
      };
    ensure_admin_api_key(*store, cfg.store_path);
    api::TokenIssuer issuer;
    if (!token_keys.empty())
      issuer = [key = token_keys.front()](std::string_view stream, std::int64_t expires_s, std::string_view ip) {
        return auth::issue_token(key, stream, expires_s, ip);
      };
    api_server = std::make_unique<api::Api>(pool, acfg, *store, *hooked, std::move(live), std::move(issuer));
    // A revoked key or a deleted stream ends its live publish (in-process ingest only).
    if (ingest)
      api_server->set_disconnect([&ingest](std::string_view stream, std::string_view key_id, std::string_view reason) {
        ingest->disconnect(stream, key_id, reason);
      });
    api_server->start();
    log::info("api", "API listening", {{"listen", acfg.listen}, {"port", api_server->port()}});
  }
  ready = true;
  log::info("app", "streamflex started",
            {{"role", role_name},
             {"admin", cfg.admin_listen},
             {"admin_port", admin.port()},
             {"threads", threads},
             {"store", cfg.store_path},
             {"origin_port", origin ? origin->port() : 0}});
  if (origin)
    log::info("app", "player page",
              {{"url", fmt::format("http://{}/?stream=demo", edge ? cfg.edge.listen : cfg.origin.listen)}});

  std::unique_ptr<DemoPublisher> demo;
  if (roles.demo && ingest) {
    (void)keys->revoke("demo");  // a fresh key each start; earlier demo keys stop working
    auto key = keys->create_key("demo");
    if (key) {
      auto url = fmt::format("rtmp://127.0.0.1:{}/live/{}", ingest->port(), *key);
      demo = std::make_unique<DemoPublisher>(cfg.demo_ffmpeg, url);
    }
  }

  // Wait for a signal on the main thread.
  boost::asio::io_context signals_ctx;
  boost::asio::signal_set signals(signals_ctx, SIGINT, SIGTERM);
  int signal_number = 0;
  signals.async_wait([&](const boost::system::error_code&, int n) { signal_number = n; });
  signals_ctx.run();

  log::info("app", "shutting down", {{"signal", signal_number}});
  ready = false;
  demo.reset();
  // Stop accepting, end sessions, let in-flight work finish; past the deadline, leave anyway.
  auto done = std::async(std::launch::async, [&] {
    if (ingest) ingest->stop();
    if (relays) relays->stop();
    if (pusher) pusher->stop();
    if (origin) origin->stop();
    if (edge) edge->stop();
    if (api_server) api_server->stop();
    admin.stop();
    pool.join();
    transcoder.reset();  // after the I/O threads: every publish has handed its stream over
  });
  if (done.wait_for(cfg.shutdown_timeout) != std::future_status::ready) {
    log::error("app", "shutdown deadline passed with work still running; exiting",
               {{"timeout_ms", cfg.shutdown_timeout.count()}});
    std::fflush(nullptr);
    std::_Exit(1);
  }
  api_server.reset();
  ingest.reset();
  relays.reset();
  pusher.reset();
  edge.reset();
  origin.reset();
  hooks.reset();
  log::info("app", "stopped");
  return 0;
}

int keys_command(const AppConfig& cfg, const std::string& action, const std::string& arg, bool takeover) {
  auto store = auth::open_sqlite_key_store(cfg.store_path);
  if (action == "create") {
    auto key = store->create_key(arg);
    if (!key) {
      std::fprintf(stderr, "streamflex keys create: %s: %s\n", arg.c_str(),
                   key.error() == errc::invalid_argument ? "stream names are 1-64 of A-Z a-z 0-9 _ -"
                                                         : key.error().message().c_str());
      return 1;
    }
    if (takeover) (void)store->set_takeover(arg, true);
    std::printf("stream %s: new key (shown once; keep it secret). Publish to rtmp://<host>:1935/live/<key>\n",
                arg.c_str());
    std::printf("%s\n", key->c_str());
    return 0;
  }
  if (action == "list") {
    auto list = store->list_keys();
    if (!list) {
      std::fprintf(stderr, "streamflex keys list: %s\n", list.error().message().c_str());
      return 1;
    }
    std::printf("%-14s %-24s %-14s %s\n", "ID", "STREAM", "CREATED_MS", "STATE");
    for (auto& k : *list)
      if (arg.empty() || k.stream == arg)
        std::printf("%-14s %-24s %-14lld %s\n", k.id.c_str(), k.stream.c_str(), static_cast<long long>(k.created_ms),
                    k.revoked_ms ? "revoked" : "active");
    return 0;
  }
  auto n = store->revoke(arg);
  if (!n) {
    std::fprintf(stderr, "streamflex keys revoke: no active key with id or stream '%s'\n", arg.c_str());
    return 1;
  }
  std::printf("revoked %d key(s)\n", *n);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  AppConfig cfg;
  ConfigSchema schema;
  bind(schema, cfg);

  CLI::App app{"StreamFlex: live streaming platform. One binary, many roles."};
  app.require_subcommand(1);
  std::string config_path;
  if (const char* env = std::getenv("STREAMFLEX_CONFIG")) config_path = env;
  app.add_option("-c,--config", config_path, "TOML configuration file (env STREAMFLEX_CONFIG)");

  struct RoleDef {
    const char* name;
    const char* help;
    bool implemented;
  };
  const RoleDef role_defs[] = {
      {"all", "Ingest, origin (LL-HLS, DASH, player page), edge and API in one process, with a demo stream", true},
      {"ingest", "RTMP ingest: accepts publishers and checks stream keys", true},
      {"transcode",
       "Transcoder: ABR ladder of each stream relayed over RTMP (transcode.listen), pushed as CMAF to an origin "
       "(transcode.origin_url)",
       true},
      {"origin", "Origin: LL-HLS and DASH from CMAF pushed over HTTP (origin.ingest_secret)", true},
      {"edge", "Edge: caching reverse proxy for players (edge.upstreams)", true},
      {"api", "Control plane: REST API (streams, keys, tokens, webhooks) and the dashboard", true},
      {"analytics", "Viewer and QoE analytics", false},
      {"director", "Playback entry point: routes viewers to edges", false},
  };
  std::string chosen_role;
  std::string transcode_input, transcode_output = "transcode-out";
  bool transcode_realtime = false;
  for (auto& r : role_defs) {
    auto* sub = app.add_subcommand(r.name, r.help);
    sub->add_option("-c,--config", config_path, "TOML configuration file (env STREAMFLEX_CONFIG)");
    schema.add_flags(*sub);
    sub->callback([&chosen_role, name = r.name] { chosen_role = name; });
    if (std::string_view(r.name) == "transcode") {
      sub->add_option("--input", transcode_input, "Transcode this FLV file instead (benchmarks, checks)");
      sub->add_option("--output-dir", transcode_output, "With --input: write each rung as <dir>/<rung>.mp4");
      sub->add_flag("--re", transcode_realtime, "With --input: feed frames at their timestamps, as a live source");
    }
  }

  auto* keys = app.add_subcommand("keys", "Manage stream keys in the store the server uses");
  keys->require_subcommand(1);
  std::string keys_action, keys_arg;
  bool takeover = false;
  auto* kc = keys->add_subcommand("create", "Create a key for a stream; prints the key alone on the last line");
  kc->add_option("stream", keys_arg, "Stream name")->required();
  kc->add_flag("--takeover", takeover, "A new publisher replaces a live one instead of being refused");
  kc->callback([&] { keys_action = "create"; });
  auto* kl = keys->add_subcommand("list", "List keys (ids, streams, state; never the keys)");
  kl->add_option("stream", keys_arg, "Only this stream's keys (required with --api)");
  kl->callback([&] { keys_action = "list"; });
  ApiCli api_cli;
  auto* kr = keys->add_subcommand("revoke", "Revoke a key by id, or all keys of a stream");
  kr->add_option("id_or_stream", keys_arg, "Key id or stream name (with --api: the stream)")->required();
  kr->add_option("id", api_cli.id, "With --api: the key id");
  kr->callback([&] { keys_action = "revoke"; });
  for (auto* k : {kc, kl, kr}) {
    k->add_option("-c,--config", config_path, "TOML configuration file (env STREAMFLEX_CONFIG)");
    schema.add_flags(*k);
  }
  add_api_cli(app, *keys, api_cli);

  auto* vt = app.add_subcommand("viewer-token",
                                "Issue a viewer token for a token-protected stream with the configured keys "
                                "(auth.token_keys), without the API; prints the token alone");
  std::string vt_stream, vt_ip;
  std::int64_t vt_ttl = 3600;
  vt->add_option("stream", vt_stream, "Stream name")->required();
  vt->add_option("--ttl", vt_ttl, "Seconds the token stays valid")->check(CLI::Range(1LL, 366LL * 24 * 3600));
  vt->add_option("--ip", vt_ip, "Bind the token to this client address");
  vt->add_option("-c,--config", config_path, "TOML configuration file (env STREAMFLEX_CONFIG)");
  schema.add_flags(*vt);

  LoadgenCommand loadgen_cmd;
  add_loadgen_command(app, loadgen_cmd);

  auto* show = app.add_subcommand("config", "Print every configuration key with its default, as a Markdown table");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a success; any other command-line error is a usage error (exit 2).
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  if (loadgen_cmd.sub->parsed()) return run_loadgen_command(loadgen_cmd);
  if (api_cli_parsed(api_cli)) {
    if (keys_are_remote(api_cli) && api_cli.command != "keys rotate") api_cli.name = keys_arg;
    if (api_cli.command == "keys create" && takeover) {
      std::fprintf(stderr,
                   "streamflex keys create --api: set takeover with `streams update <stream> --takeover true`\n");
      return kExitUsage;
    }
    return run_api_cli(api_cli);
  }
  if (show->parsed()) {
    std::printf("| key | type | default | environment | meaning |\n|---|---|---|---|---|\n%s",
                schema.describe().c_str());
    return 0;
  }
  if (auto err = schema.load(config_path, environ); !err.empty()) {
    std::fprintf(stderr, "streamflex: configuration refused: %s\n", err.c_str());
    return kExitUsage;
  }
  log::Level level;
  if (!log::parse_level(cfg.log_level, level)) {
    std::fprintf(stderr, "streamflex: configuration refused: log.level = '%s': expected debug, info, warn or error\n",
                 cfg.log_level.c_str());
    return kExitUsage;
  }
  log::set_level(level);

  try {
    if (!keys_action.empty()) return keys_command(cfg, keys_action, keys_arg, takeover);
    if (vt->parsed()) return issue_token_command(cfg, vt_stream, vt_ttl, vt_ip);
    for (auto& r : role_defs) {
      if (chosen_role != r.name) continue;
      if (chosen_role == "transcode" && !transcode_input.empty())
        return run_transcode_file(cfg, transcode_input, transcode_output, transcode_realtime);
      if (!r.implemented) {
        std::fprintf(stderr, "streamflex %s: this role is not implemented yet\n", r.name);
        return kExitNotImplemented;
      }
      bool all = chosen_role == "all";
      Roles roles{.ingest = all || chosen_role == "ingest",
                  .origin = all || chosen_role == "origin",
                  .edge = all || chosen_role == "edge",
                  .api = all || chosen_role == "api",
                  .transcode = all || chosen_role == "transcode",
                  .demo = all && cfg.demo_enabled};
      return run_roles(cfg, roles, chosen_role);
    }
  } catch (const std::exception& e) {
    log::error("app", "startup failed", {{"error", e.what()}});
    std::fprintf(stderr, "streamflex: %s\n", e.what());
    return 1;
  }
  return kExitUsage;
}

}  // namespace sf::app

int main(int argc, char** argv) {
  return sf::app::main(argc, argv);
}
