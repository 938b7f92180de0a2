#include "api_role.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "sf/core/log.h"

namespace sf::app {
namespace {

namespace fs = std::filesystem;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Writes `content` to a new file of mode 0600; false if it exists already.
bool write_new_private_file(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  }
  std::size_t done = 0;
  while (done < content.size()) {
    auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot write {}", path));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, 0600);
  ::close(fd);
  return true;
}

fs::path store_dir(const std::string& store_path) {
  auto dir = fs::path(store_path).parent_path();
  return dir.empty() ? fs::path(".") : dir;
}

class WebhookHandler final : public ingest::PublishHandler {
 public:
  WebhookHandler(api::Webhooks& hooks, ingest::PublishInfo info) : hooks_(hooks), info_(std::move(info)) {}
  void on_stop(std::string_view reason) override {
    auto addr = info_.remote.substr(0, info_.remote.rfind(':'));
    hooks_.notify("on_publish_done", info_.stream,
                  {{"call", "publish_done"},
                   {"app", info_.app},
                   {"addr", addr},
                   {"key_id", info_.key_id},
                   {"reason", reason},
                   {"started_ms", info_.started_ms},
                   {"duration_ms", wall_ms() - info_.started_ms}});
  }

 private:
  api::Webhooks& hooks_;
  ingest::PublishInfo info_;
};

class WebhookObserver final : public ingest::Observer {
 public:
  explicit WebhookObserver(api::Webhooks& hooks) : hooks_(hooks) {}
  std::unique_ptr<ingest::PublishHandler> on_publish_start(const ingest::PublishInfo& info) override {
    return std::make_unique<WebhookHandler>(hooks_, info);
  }

 private:
  api::Webhooks& hooks_;
};

}  // namespace

std::string find_dashboard_root(const std::string& configured) {
  if (!configured.empty()) return configured;
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  for (auto candidate : {exe.parent_path() / "../../web/dashboard/dist", fs::path("web/dashboard/dist")})
    if (fs::is_regular_file(candidate / "index.html", ec)) return fs::weakly_canonical(candidate, ec).string();
  return {};
}

void ensure_admin_api_key(auth::Store& store, const std::string& store_path) {
  auto path = (store_dir(store_path) / "admin-api-key").string();
  std::error_code ec;
  if (fs::exists(path, ec)) {
    log::info("api", "admin API key file present", {{"path", path}});
    return;
  }
  auto key = store.create_api_key("admin", {"admin"});
  if (!key) throw std::runtime_error("cannot create the admin API key: " + key.error().message());
  if (!write_new_private_file(path, key->secret + "\n")) {
    // Another process wrote it meanwhile; this key was never shown: revoke it.
    (void)store.revoke_api_key(key->id);
    return;
  }
  log::info("api", "admin API key created; read it from the file", {{"path", path}, {"api_key_id", key->id}});
}

std::string load_or_create_secret(const std::string& path) {
  std::ifstream in(path);
  std::string secret;
  if (in && std::getline(in, secret) && !secret.empty()) return secret;
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  secret.clear();
  for (auto c : b) secret += fmt::format("{:02x}", c);
  auto parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  if (!write_new_private_file(path, secret + "\n")) return load_or_create_secret(path);
  return secret;
}

api::LiveSource ingest_live_source(const ingest::Ingest& ingest) {
  return [&ingest] {
    std::map<std::string, api::LiveState> out;
    for (auto& s : ingest.streams()) {
      api::LiveState l;
      l.since_ms = s.info.started_ms;
      l.bitrate_bps = s.stats.bitrate_bps;
      l.fps = s.stats.fps;
      l.keyframe_interval_s = s.stats.keyframe_interval_s;
      if (s.video) {
        l.video_codec = media::codec_name(s.video->codec);
        if (s.video->video) {
          l.width = s.video->video->width;
          l.height = s.video->video->height;
        }
      }
      if (s.audio) l.audio_codec = media::codec_name(s.audio->codec);
      out[s.info.stream] = std::move(l);
    }
    return out;
  };
}

std::shared_ptr<ingest::Observer> make_webhook_observer(api::Webhooks& hooks) {
  return std::make_shared<WebhookObserver>(hooks);
}

}  // namespace sf::app
