#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "sf/auth/key_store.h"
#include "sf/auth/store.h"
#include "sf/core/secure.h"

namespace sf::auth {
namespace {

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view s) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> b(bytes);
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return hex(b.data(), b.size());
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr std::size_t kKeptDeliveries = 1000;

// Schema migrations, applied in order; user_version records how many ran. Never edit one that
// shipped: append another.
constexpr const char* kMigrations[] = {
    R"(CREATE TABLE streams (
         name TEXT PRIMARY KEY,
         takeover INTEGER NOT NULL DEFAULT 0,
         created_ms INTEGER NOT NULL);
       CREATE TABLE stream_keys (
         id TEXT PRIMARY KEY,
         stream TEXT NOT NULL REFERENCES streams(name),
         key_hash TEXT NOT NULL UNIQUE,
         created_ms INTEGER NOT NULL,
         revoked_ms INTEGER);
       CREATE INDEX stream_keys_stream ON stream_keys(stream);)",
    // 2: stream settings, key rotation (expires_ms), API keys, webhook deliveries.
    R"(ALTER TABLE streams ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
       ALTER TABLE streams ADD COLUMN profile TEXT NOT NULL DEFAULT 'default';
       ALTER TABLE streams ADD COLUMN latency TEXT NOT NULL DEFAULT 'll-hls';
       ALTER TABLE streams ADD COLUMN part_target_ms INTEGER NOT NULL DEFAULT 500;
       ALTER TABLE streams ADD COLUMN segment_target_ms INTEGER NOT NULL DEFAULT 2000;
       ALTER TABLE streams ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;
       UPDATE streams SET updated_ms = created_ms;
       ALTER TABLE stream_keys ADD COLUMN expires_ms INTEGER;
       CREATE TABLE api_keys (
         id TEXT PRIMARY KEY,
         name TEXT NOT NULL,
         key_hash TEXT NOT NULL UNIQUE,
         scopes TEXT NOT NULL,
         created_ms INTEGER NOT NULL,
         revoked_ms INTEGER);
       CREATE TABLE webhook_deliveries (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         event TEXT NOT NULL,
         stream TEXT NOT NULL,
         url TEXT NOT NULL,
         state TEXT NOT NULL,
         outcome TEXT NOT NULL DEFAULT '',
         attempts INTEGER NOT NULL DEFAULT 0,
         last_status INTEGER NOT NULL DEFAULT 0,
         last_error TEXT NOT NULL DEFAULT '',
         created_ms INTEGER NOT NULL,
         updated_ms INTEGER NOT NULL);)",
};

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  explicit operator bool() const { return stmt_ != nullptr; }
  Statement& bind(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind_null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  int step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_ERROR; }
  std::string text(int col) {
    auto p = sqlite3_column_text(stmt_, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  std::int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<std::int64_t> optional_integer(int col) {
    if (is_null(col)) return std::nullopt;
    return integer(col);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

constexpr const char* kStreamColumns =
    "name, visibility, profile, latency, part_target_ms, segment_target_ms, takeover, created_ms, updated_ms";

StreamRecord stream_of(Statement& s) {
  StreamRecord r;
  r.name = s.text(0);
  r.visibility = s.text(1);
  r.profile = s.text(2);
  r.latency = s.text(3);
  r.part_target_ms = s.integer(4);
  r.segment_target_ms = s.integer(5);
  r.takeover = s.integer(6) != 0;
  r.created_ms = s.integer(7);
  r.updated_ms = s.integer(8);
  return r;
}

std::vector<std::string> split_scopes(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    auto item = s.substr(0, comma);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

bool valid_profile_name(std::string_view p) {
  return valid_stream_name(p);
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(const std::string& path) {
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error(fmt::format("cannot open key store {}: {}", path, why));
    }
    sqlite3_busy_timeout(db_, 2000);
    exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;");
    migrate();
  }
  ~SqliteStore() override { sqlite3_close(db_); }

  // KeyStore

  Result<std::string> create_key(std::string_view stream) override {
    if (!valid_stream_name(stream)) return fail(errc::invalid_argument);
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    if (!tx) return fail(errc::io_error);
    auto t = now_ms();
    Statement s(db_, "INSERT OR IGNORE INTO streams(name, created_ms, updated_ms) VALUES(?1, ?2, ?2)");
    s.bind(1, stream).bind(2, t);
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    auto key = insert_key(stream, t);
    if (!key || !tx.commit()) return fail(errc::io_error);
    return key->secret;
  }

  Result<PublishGrant> check_publish_key(std::string_view key) override {
    if (key.empty() || key.size() > 256) return fail(errc::unauthorized);
    auto want = sha256_hex(key);
    std::lock_guard lock(mu_);
    Statement s(
        db_,
        "SELECT k.id, k.stream, s.takeover, k.key_hash, s.profile, s.latency, s.part_target_ms, s.segment_target_ms "
        "FROM stream_keys k JOIN streams s ON s.name = k.stream "
        "WHERE k.key_hash = ?1 AND k.revoked_ms IS NULL AND (k.expires_ms IS NULL OR k.expires_ms > ?2)");
    s.bind(1, want).bind(2, now_ms());
    int rc = s.step();
    if (rc == SQLITE_DONE) return fail(errc::unauthorized);
    if (rc != SQLITE_ROW) return fail(errc::io_error);
    // The lookup is by hash; compare the full hashes in constant time all the same.
    if (!constant_time_equal(s.text(3), want)) return fail(errc::unauthorized);
    auto profile = s.text(4);
    return PublishGrant{s.text(1), s.text(0),    s.integer(2) != 0, profile == "default" ? std::string() : profile,
                        s.text(5), s.integer(6), s.integer(7)};
  }

  Result<std::vector<KeyInfo>> list_keys() override {
    std::lock_guard lock(mu_);
    Statement s(db_,
                "SELECT id, stream, created_ms, revoked_ms, expires_ms FROM stream_keys ORDER BY stream, created_ms");
    std::vector<KeyInfo> out;
    auto now = now_ms();
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      KeyInfo k{s.text(0), s.text(1), s.integer(2), s.optional_integer(3)};
      auto expires = s.optional_integer(4);
      if (!k.revoked_ms && expires && *expires <= now) k.revoked_ms = expires;
      out.push_back(std::move(k));
    }
    if (rc != SQLITE_DONE) return fail(errc::io_error);
    return out;
  }

  Result<int> revoke(std::string_view id_or_stream) override {
    std::lock_guard lock(mu_);
    Statement s(db_, "UPDATE stream_keys SET revoked_ms = ?1 WHERE (id = ?2 OR stream = ?2) AND revoked_ms IS NULL");
    s.bind(1, now_ms()).bind(2, id_or_stream);
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    int n = sqlite3_changes(db_);
    if (n == 0) return fail(errc::not_found);
    return n;
  }

  Result<void> set_takeover(std::string_view stream, bool takeover) override {
    std::lock_guard lock(mu_);
    Statement s(db_, "UPDATE streams SET takeover = ?1, updated_ms = ?3 WHERE name = ?2");
    s.bind(1, std::int64_t{takeover}).bind(2, stream).bind(3, now_ms());
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    if (sqlite3_changes(db_) == 0) return fail(errc::not_found);
    return {};
  }

  // Streams

  Result<std::vector<StreamRecord>> list_streams() override {
    std::lock_guard lock(mu_);
    Statement s(db_, fmt::format("SELECT {} FROM streams ORDER BY name", kStreamColumns).c_str());
    std::vector<StreamRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(stream_of(s));
    if (rc != SQLITE_DONE) return fail(errc::io_error);
    return out;
  }

  Result<StreamRecord> get_stream(std::string_view name) override {
    std::lock_guard lock(mu_);
    return get_stream_locked(name);
  }

  // ?1 name, ?2..?7 settings, ?8 time: the numbering create_stream's INSERT and update_stream's
  // UPDATE share.
  static void bind_settings(Statement& s, const StreamRecord& in, std::int64_t t) {
    s.bind(1, in.name)
        .bind(2, in.visibility)
        .bind(3, in.profile)
        .bind(4, in.latency)
        .bind(5, in.part_target_ms)
        .bind(6, in.segment_target_ms)
        .bind(7, std::int64_t{in.takeover})
        .bind(8, t);
  }

  Result<NewSecret> create_stream(const StreamRecord& in) override {
    std::string why;
    if (!validate_stream(in, why)) return fail(errc::invalid_argument);
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    if (!tx) return fail(errc::io_error);
    auto t = now_ms();
    Statement s(db_,
                "INSERT OR IGNORE INTO streams(name, visibility, profile, latency, part_target_ms, segment_target_ms, "
                "takeover, created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)");
    bind_settings(s, in, t);
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    if (sqlite3_changes(db_) == 0) return fail(errc::conflict);
    auto key = insert_key(in.name, t);
    if (!key || !tx.commit()) return fail(errc::io_error);
    return key;
  }

  Result<StreamRecord> update_stream(const StreamRecord& in) override {
    std::string why;
    if (!validate_stream(in, why)) return fail(errc::invalid_argument);
    std::lock_guard lock(mu_);
    Statement s(db_,
                "UPDATE streams SET visibility = ?2, profile = ?3, latency = ?4, part_target_ms = ?5, "
                "segment_target_ms = ?6, takeover = ?7, updated_ms = ?8 WHERE name = ?1");
    bind_settings(s, in, now_ms());
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    if (sqlite3_changes(db_) == 0) return fail(errc::not_found);
    return get_stream_locked(in.name);
  }

  Result<void> delete_stream(std::string_view name) override {
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    if (!tx) return fail(errc::io_error);
    Statement k(db_, "DELETE FROM stream_keys WHERE stream = ?1");
    k.bind(1, name);
    Statement s(db_, "DELETE FROM streams WHERE name = ?1");
    s.bind(1, name);
    if (k.step() != SQLITE_DONE || s.step() != SQLITE_DONE) return fail(errc::io_error);
    if (sqlite3_changes(db_) == 0) return fail(errc::not_found);
    if (!tx.commit()) return fail(errc::io_error);
    return {};
  }

  // Stream keys

  Result<std::vector<StreamKeyRecord>> list_stream_keys(std::string_view stream) override {
    std::lock_guard lock(mu_);
    if (!stream_exists(stream)) return fail(errc::not_found);
    Statement s(db_,
                "SELECT id, stream, created_ms, expires_ms, revoked_ms FROM stream_keys WHERE stream = ?1 "
                "ORDER BY created_ms, rowid");
    s.bind(1, stream);
    std::vector<StreamKeyRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.text(0), s.text(1), s.integer(2), s.optional_integer(3), s.optional_integer(4)});
    if (rc != SQLITE_DONE) return fail(errc::io_error);
    return out;
  }

  Result<NewSecret> create_stream_key(std::string_view stream) override {
    std::lock_guard lock(mu_);
    if (!stream_exists(stream)) return fail(errc::not_found);
    return insert_key(stream, now_ms());
  }

  Result<RotatedKey> rotate_stream_key(std::string_view stream, std::string_view id, std::int64_t grace_ms) override {
    if (grace_ms < 0) return fail(errc::invalid_argument);
    std::lock_guard lock(mu_);
    Transaction tx(*this);
    if (!tx) return fail(errc::io_error);
    auto now = now_ms();
    auto old = find_key(stream, id);
    if (!old) return std::unexpected(old.error());
    if (old->state(now) != "active") return fail(errc::conflict);
    std::int64_t expires = now + grace_ms;
    Statement u(db_, "UPDATE stream_keys SET expires_ms = ?1 WHERE id = ?2");
    u.bind(1, expires).bind(2, id);
    if (u.step() != SQLITE_DONE) return fail(errc::io_error);
    auto key = insert_key(stream, now);
    if (!key || !tx.commit()) return fail(errc::io_error);
    return RotatedKey{std::move(*key), std::string(id), expires};
  }

  Result<void> revoke_stream_key(std::string_view stream, std::string_view id) override {
    std::lock_guard lock(mu_);
    auto old = find_key(stream, id);
    if (!old) return std::unexpected(old.error());
    if (old->state(now_ms()) == "revoked") return fail(errc::conflict);
    Statement u(db_, "UPDATE stream_keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL");
    u.bind(1, now_ms()).bind(2, id);
    if (u.step() != SQLITE_DONE) return fail(errc::io_error);
    return {};
  }

  // API keys

  Result<NewSecret> create_api_key(std::string_view name, const std::vector<std::string>& scopes) override {
    if (name.empty() || name.size() > 128 || scopes.empty()) return fail(errc::invalid_argument);
    std::string joined;
    for (auto& s : scopes)
      if (!valid_scope(s)) return fail(errc::invalid_argument);
    std::vector<std::string> unique;
    for (auto& s : scopes)
      if (std::ranges::find(unique, s) == unique.end()) unique.push_back(s);
    for (auto& s : unique) joined += (joined.empty() ? "" : ",") + s;
    NewSecret out{random_hex(6), "sfa_" + random_hex(24)};
    std::lock_guard lock(mu_);
    Statement s(db_, "INSERT INTO api_keys(id, name, key_hash, scopes, created_ms) VALUES(?1, ?2, ?3, ?4, ?5)");
    s.bind(1, out.id).bind(2, name).bind(3, sha256_hex(out.secret)).bind(4, joined).bind(5, now_ms());
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    return out;
  }

  Result<std::vector<ApiKeyRecord>> list_api_keys() override {
    std::lock_guard lock(mu_);
    Statement s(db_, "SELECT id, name, scopes, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, rowid");
    std::vector<ApiKeyRecord> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW)
      out.push_back({s.text(0), s.text(1), split_scopes(s.text(2)), s.integer(3), s.optional_integer(4)});
    if (rc != SQLITE_DONE) return fail(errc::io_error);
    return out;
  }

  Result<ApiKeyRecord> check_api_key(std::string_view key) override {
    if (key.empty() || key.size() > 256) return fail(errc::unauthorized);
    auto want = sha256_hex(key);
    std::lock_guard lock(mu_);
    Statement s(db_,
                "SELECT id, name, scopes, created_ms, key_hash FROM api_keys WHERE key_hash = ?1 AND revoked_ms IS "
                "NULL");
    s.bind(1, want);
    int rc = s.step();
    if (rc == SQLITE_DONE) return fail(errc::unauthorized);
    if (rc != SQLITE_ROW) return fail(errc::io_error);
    if (!constant_time_equal(s.text(4), want)) return fail(errc::unauthorized);
    return ApiKeyRecord{s.text(0), s.text(1), split_scopes(s.text(2)), s.integer(3), std::nullopt};
  }

  Result<void> revoke_api_key(std::string_view id) override {
    std::lock_guard lock(mu_);
    Statement s(db_, "UPDATE api_keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL");
    s.bind(1, now_ms()).bind(2, id);
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    if (sqlite3_changes(db_) == 0) return fail(errc::not_found);
    return {};
  }

  // Webhook deliveries

  Result<std::int64_t> add_delivery(const WebhookDelivery& d) override {
    std::lock_guard lock(mu_);
    Statement s(db_,
                "INSERT INTO webhook_deliveries(event, stream, url, state, outcome, attempts, last_status, last_error, "
                "created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    auto t = d.created_ms ? d.created_ms : now_ms();
    s.bind(1, d.event)
        .bind(2, d.stream)
        .bind(3, d.url)
        .bind(4, d.state)
        .bind(5, d.outcome)
        .bind(6, std::int64_t{d.attempts})
        .bind(7, std::int64_t{d.last_status})
        .bind(8, d.last_error)
        .bind(9, t)
        .bind(10, d.updated_ms ? d.updated_ms : t);
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    std::int64_t id = sqlite3_last_insert_rowid(db_);
    Statement prune(db_, "DELETE FROM webhook_deliveries WHERE id <= ?1");
    prune.bind(1, id - static_cast<std::int64_t>(kKeptDeliveries));
    (void)prune.step();
    return id;
  }

  Result<void> update_delivery(const WebhookDelivery& d) override {
    std::lock_guard lock(mu_);
    Statement s(db_,
                "UPDATE webhook_deliveries SET state = ?2, outcome = ?3, attempts = ?4, last_status = ?5, "
                "last_error = ?6, updated_ms = ?7 WHERE id = ?1");
    s.bind(1, d.id)
        .bind(2, d.state)
        .bind(3, d.outcome)
        .bind(4, std::int64_t{d.attempts})
        .bind(5, std::int64_t{d.last_status})
        .bind(6, d.last_error)
        .bind(7, now_ms());
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    if (sqlite3_changes(db_) == 0) return fail(errc::not_found);
    return {};
  }

  Result<std::vector<WebhookDelivery>> list_deliveries(std::size_t limit) override {
    std::lock_guard lock(mu_);
    Statement s(db_,
                "SELECT id, event, stream, url, state, outcome, attempts, last_status, last_error, created_ms, "
                "updated_ms FROM webhook_deliveries ORDER BY id DESC LIMIT ?1");
    s.bind(1, static_cast<std::int64_t>(std::min(limit, kKeptDeliveries)));
    std::vector<WebhookDelivery> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      WebhookDelivery d;
      d.id = s.integer(0);
      d.event = s.text(1);
      d.stream = s.text(2);
      d.url = s.text(3);
      d.state = s.text(4);
      d.outcome = s.text(5);
      d.attempts = static_cast<int>(s.integer(6));
      d.last_status = static_cast<int>(s.integer(7));
      d.last_error = s.text(8);
      d.created_ms = s.integer(9);
      d.updated_ms = s.integer(10);
      out.push_back(std::move(d));
    }
    if (rc != SQLITE_DONE) return fail(errc::io_error);
    return out;
  }

 private:
  // BEGIN IMMEDIATE ... COMMIT, rolled back unless committed. Under mu_.
  class Transaction {
   public:
    explicit Transaction(SqliteStore& s) : s_(s), open_(s.exec("BEGIN IMMEDIATE")) {}
    ~Transaction() {
      if (open_) s_.exec("ROLLBACK");
    }
    explicit operator bool() const { return open_; }
    bool commit() {
      if (!open_) return false;
      open_ = false;
      return s_.exec("COMMIT");
    }

   private:
    SqliteStore& s_;
    bool open_;
  };

  bool exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK; }

  bool stream_exists(std::string_view name) {
    Statement s(db_, "SELECT 1 FROM streams WHERE name = ?1");
    s.bind(1, name);
    return s.step() == SQLITE_ROW;
  }

  Result<StreamRecord> get_stream_locked(std::string_view name) {
    Statement s(db_, fmt::format("SELECT {} FROM streams WHERE name = ?1", kStreamColumns).c_str());
    s.bind(1, name);
    int rc = s.step();
    if (rc == SQLITE_DONE) return fail(errc::not_found);
    if (rc != SQLITE_ROW) return fail(errc::io_error);
    return stream_of(s);
  }

  Result<StreamKeyRecord> find_key(std::string_view stream, std::string_view id) {
    Statement s(db_,
                "SELECT id, stream, created_ms, expires_ms, revoked_ms FROM stream_keys WHERE stream = ?1 AND id = ?2");
    s.bind(1, stream).bind(2, id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return fail(errc::not_found);
    if (rc != SQLITE_ROW) return fail(errc::io_error);
    return StreamKeyRecord{s.text(0), s.text(1), s.integer(2), s.optional_integer(3), s.optional_integer(4)};
  }

  Result<NewSecret> insert_key(std::string_view stream, std::int64_t t) {
    NewSecret out{random_hex(6), "sfk_" + random_hex(20)};
    Statement k(db_, "INSERT INTO stream_keys(id, stream, key_hash, created_ms) VALUES(?1, ?2, ?3, ?4)");
    k.bind(1, out.id).bind(2, stream).bind(3, sha256_hex(out.secret)).bind(4, t);
    if (k.step() != SQLITE_DONE) return fail(errc::io_error);
    return out;
  }

  // Each step in its own immediate transaction that re-reads user_version, so two processes
  // opening an old database at once migrate it once.
  void migrate() {
    constexpr std::int64_t latest = std::size(kMigrations);
    for (std::int64_t i = 0; i < latest; ++i) {
      if (!exec("BEGIN IMMEDIATE")) throw std::runtime_error("store migration: cannot lock the database");
      Statement v(db_, "PRAGMA user_version");
      v.step();
      auto version = v.integer(0);
      if (version > i) {
        exec("COMMIT");
        continue;
      }
      char* err = nullptr;
      std::string sql = fmt::format("{}; PRAGMA user_version = {};", kMigrations[i], i + 1);
      if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK || !exec("COMMIT")) {
        std::string why = err ? err : "commit failed";
        sqlite3_free(err);
        exec("ROLLBACK");
        throw std::runtime_error(fmt::format("store migration {} failed: {}", i + 1, why));
      }
    }
  }

  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::string StreamKeyRecord::state(std::int64_t now) const {
  if (revoked_ms) return "revoked";
  if (expires_ms) return *expires_ms > now ? "grace" : "revoked";
  return "active";
}

bool ApiKeyRecord::has_scope(std::string_view scope) const {
  for (auto& s : scopes)
    if (s == scope || s == "admin") return true;
  return false;
}

bool valid_scope(std::string_view scope) {
  return scope == "admin" || scope == "streams" || scope == "tokens" || scope == "ingest";
}

bool validate_stream(const StreamRecord& s, std::string& why) {
  if (!valid_stream_name(s.name)) {
    why = "name: 1-64 of A-Z a-z 0-9 _ -";
  } else if (s.visibility != "public" && s.visibility != "token") {
    why = "visibility: \"public\" or \"token\"";
  } else if (!valid_profile_name(s.profile)) {
    why = "profile: a ladder profile name (1-64 of A-Z a-z 0-9 _ -) or \"passthrough\"";
  } else if (s.latency != "ll-hls" && s.latency != "hls") {
    why = "latency: \"ll-hls\" or \"hls\"";
  } else if (s.part_target_ms < kMinPartTargetMs || s.part_target_ms > kMaxPartTargetMs) {
    why = fmt::format("part_target_ms: {}-{}", kMinPartTargetMs, kMaxPartTargetMs);
  } else if (s.segment_target_ms < std::max(s.part_target_ms, kMinSegmentTargetMs) ||
             s.segment_target_ms > kMaxSegmentTargetMs) {
    why =
        fmt::format("segment_target_ms: from {} (and part_target_ms) to {}", kMinSegmentTargetMs, kMaxSegmentTargetMs);
  } else {
    return true;
  }
  return false;
}

bool valid_stream_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

std::unique_ptr<Store> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path);
}

std::unique_ptr<KeyStore> open_sqlite_key_store(const std::string& path) {
  return open_sqlite_store(path);
}

}  // namespace sf::auth
