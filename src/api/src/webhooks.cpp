#include "sf/api/webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "sf/api/http_call.h"
#include "sf/core/log.h"

namespace sf::api {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string form_escape(std::string_view s) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

// "203.0.113.7:51234" -> "203.0.113.7"; "[::1]:5" -> "::1".
std::string address_only(std::string_view remote) {
  if (remote.starts_with('[')) {
    auto end = remote.find(']');
    return std::string(remote.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
  }
  auto colon = remote.rfind(':');
  if (colon != std::string_view::npos && remote.find(':') == colon) return std::string(remote.substr(0, colon));
  return std::string(remote);
}

constexpr std::chrono::milliseconds kDrainTime{2000};

struct Job {
  std::int64_t delivery_id = 0;
  std::string event{}, stream{}, url{};
  json fields{};
  std::string body{}, content_type{};  // encoded at the first attempt, with the delivery id
  int attempts = 0;
  Clock::time_point due{};
};

}  // namespace

std::string webhook_signature(std::string_view secret, std::string_view body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), md, &len);
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 15];
  }
  return out;
}

struct Webhooks::Impl {
  WebhookConfig config;
  auth::Store* store;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  bool stopping = false;
  Clock::time_point drain_until{};  // when stopping: last moment to start a first attempt
  std::thread thread;

  // The body and its content type for an event, in the configured format.
  std::pair<std::string, std::string> encode(const json& fields) const {
    if (config.format == "form") {
      std::string out;
      for (auto& [k, v] : fields.items()) {
        if (!out.empty()) out += '&';
        out += form_escape(k) + '=' + form_escape(v.is_string() ? v.get<std::string>() : v.dump());
      }
      return {out, "application/x-www-form-urlencoded"};
    }
    return {fields.dump(), "application/json"};
  }

  std::vector<std::pair<std::string, std::string>> headers(const std::string& event, std::int64_t delivery_id,
                                                           const std::string& body, const std::string& type) const {
    return {{"Content-Type", type},
            {"User-Agent", "StreamFlex"},
            {"X-StreamFlex-Event", event},
            {"X-StreamFlex-Delivery", std::to_string(delivery_id)},
            {"X-StreamFlex-Signature", "sha256=" + webhook_signature(config.secret, body)}};
  }

  std::int64_t record(const auth::WebhookDelivery& d) {
    if (!store) return 0;
    auto id = store->add_delivery(d);
    return id ? *id : 0;
  }
  void update(const auth::WebhookDelivery& d) {
    if (store && d.id) (void)store->update_delivery(d);
  }

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      if (stopping) {
        // Notifications never sent yet (publishes the shutdown itself ended) get one attempt
        // while the drain time lasts; retries are abandoned.
        auto first = std::find_if(jobs.begin(), jobs.end(), [](auto& j) { return j.attempts == 0; });
        if (first == jobs.end() || Clock::now() >= drain_until) return;
        Job job = std::move(*first);
        jobs.erase(first);
        lock.unlock();
        attempt(job);
        lock.lock();
        continue;
      }
      if (jobs.empty()) {
        cv.wait(lock);
        continue;
      }
      auto next = std::min_element(jobs.begin(), jobs.end(), [](auto& a, auto& b) { return a.due < b.due; });
      if (next->due > Clock::now()) {
        cv.wait_until(lock, next->due);
        continue;
      }
      Job job = std::move(*next);
      jobs.erase(next);
      lock.unlock();
      attempt(job);
      lock.lock();
      if (job.attempts < config.max_attempts && job.due != Clock::time_point{}) jobs.push_back(std::move(job));
    }
  }

  // One attempt; sets job.due for a retry, or to the epoch when done.
  void attempt(Job& job) {
    if (job.body.empty()) {
      job.delivery_id = record({.event = job.event, .stream = job.stream, .url = job.url});
      job.fields["delivery_id"] = job.delivery_id;
      std::tie(job.body, job.content_type) = encode(job.fields);
    }
    ++job.attempts;
    auto r = http_call("POST", job.url, headers(job.event, job.delivery_id, job.body, job.content_type), job.body,
                       config.timeout);
    auth::WebhookDelivery d{.id = job.delivery_id, .event = job.event, .stream = job.stream, .url = job.url};
    d.attempts = job.attempts;
    if (r) d.last_status = r->status;
    bool delivered = r && r->status >= 200 && r->status < 300;
    if (delivered) {
      d.state = "delivered";
      job.due = {};
    } else {
      d.last_error = r ? fmt::format("HTTP {}", r->status) : r.error().message();
      if (job.attempts >= config.max_attempts) {
        d.state = "failed";
        job.due = {};
        log::warn("webhooks", "delivery failed",
                  {{"event", job.event},
                   {"stream", job.stream},
                   {"delivery", job.delivery_id},
                   {"attempts", job.attempts},
                   {"error", d.last_error}});
      } else {
        d.state = "pending";
        job.due = Clock::now() + config.retry_base * (1 << std::min(job.attempts - 1, 16));
      }
    }
    update(d);
  }
};

Webhooks::Webhooks(WebhookConfig config, auth::Store* store) : impl_(std::make_shared<Impl>()) {
  impl_->config = std::move(config);
  impl_->store = store;
  if (impl_->config.max_attempts < 1) impl_->config.max_attempts = 1;
  impl_->thread = std::thread([impl = impl_] { impl->run(); });
}

Webhooks::~Webhooks() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->drain_until = Clock::now() + std::min<std::chrono::milliseconds>(impl_->config.timeout, kDrainTime);
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

bool Webhooks::has_on_publish() const {
  return !impl_->config.on_publish.empty();
}

bool Webhooks::allow_publish(const auth::PublishRequest& req, const auth::PublishGrant& grant) {
  auto& c = impl_->config;
  if (c.on_publish.empty()) return true;
  auto addr = address_only(req.remote);
  auth::WebhookDelivery d{.event = "on_publish", .stream = grant.stream, .url = c.on_publish};
  d.id = impl_->record(d);
  json fields{{"event", "on_publish"},  {"call", "publish"},   {"name", grant.stream},
              {"stream", grant.stream}, {"app", req.app},      {"addr", addr},
              {"key_id", grant.key_id}, {"delivery_id", d.id}, {"time_ms", now_ms()}};
  auto [body, type] = impl_->encode(fields);
  auto r = http_call("POST", c.on_publish, impl_->headers("on_publish", d.id, body, type), body, c.timeout);
  d.attempts = 1;
  bool allow;
  if (!r) {
    allow = c.on_publish_default_allow;
    d.state = "failed";
    d.last_error = r.error().message();
    log::warn("webhooks", "on_publish did not answer; default applied",
              {{"stream", grant.stream}, {"error", d.last_error}, {"allow", allow}});
  } else {
    d.state = "delivered";
    d.last_status = r->status;
    allow = r->status >= 200 && r->status < 300;
    if (allow && r->content_type.starts_with("application/json")) {
      auto j = json::parse(r->body, nullptr, false);
      if (j.is_object() && j.contains("allow") && j["allow"].is_boolean()) allow = j["allow"].get<bool>();
    }
    if (!allow) d.last_error = fmt::format("HTTP {}", r->status);
  }
  d.outcome = allow ? "allow" : "deny";
  impl_->update(d);
  log::info("webhooks", "on_publish answered",
            {{"stream", grant.stream}, {"allow", allow}, {"status", d.last_status}, {"delivery", d.id}});
  return allow;
}

void Webhooks::notify(std::string event, std::string stream, nlohmann::json fields) {
  auto& c = impl_->config;
  const std::string& url = event == "on_publish_done" ? c.on_publish_done : std::string();
  if (url.empty()) return;
  // Called on I/O threads: the delivery is recorded and encoded on the webhook thread.
  fields["event"] = event;
  fields["stream"] = stream;
  fields["name"] = stream;
  if (event == "on_publish_done" && !fields.contains("call")) fields["call"] = "publish_done";
  fields["time_ms"] = now_ms();
  Job job{.event = std::move(event), .stream = std::move(stream), .url = url, .fields = std::move(fields)};
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping || impl_->jobs.size() > 10000) return;
    job.due = Clock::now();
    impl_->jobs.push_back(std::move(job));
  }
  impl_->cv.notify_all();
}

Result<auth::PublishGrant> HookedKeyStore::check_publish(const auth::PublishRequest& req) {
  auto grant = inner_.check_publish(req);
  if (!grant || !hooks_.has_on_publish()) return grant;
  if (!hooks_.allow_publish(req, *grant)) return fail(errc::unauthorized);
  return grant;
}

}  // namespace sf::api
