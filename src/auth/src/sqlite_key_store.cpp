#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "sf/auth/key_store.h"

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

// Schema migrations, applied in order; user_version records how many ran.
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
  int step() { return sqlite3_step(stmt_); }
  std::string text(int col) {
    auto p = sqlite3_column_text(stmt_, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  std::int64_t integer(int col) { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteKeyStore final : public KeyStore {
 public:
  explicit SqliteKeyStore(const std::string& path) {
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
  ~SqliteKeyStore() override { sqlite3_close(db_); }

  Result<std::string> create_key(std::string_view stream) override {
    if (!valid_stream_name(stream)) return fail(errc::invalid_argument);
    std::lock_guard lock(mu_);
    std::string key = "sfk_" + random_hex(20);
    std::string id = random_hex(6);
    auto t = now_ms();
    if (!exec("BEGIN IMMEDIATE")) return fail(errc::io_error);
    Statement s(db_, "INSERT OR IGNORE INTO streams(name, created_ms) VALUES(?1, ?2)");
    s.bind(1, stream).bind(2, t);
    Statement k(db_, "INSERT INTO stream_keys(id, stream, key_hash, created_ms) VALUES(?1, ?2, ?3, ?4)");
    k.bind(1, id).bind(2, stream).bind(3, sha256_hex(key)).bind(4, t);
    if (s.step() != SQLITE_DONE || k.step() != SQLITE_DONE) {
      exec("ROLLBACK");
      return fail(errc::io_error);
    }
    if (!exec("COMMIT")) return fail(errc::io_error);
    return key;
  }

  Result<PublishGrant> check_publish_key(std::string_view key) override {
    if (key.empty() || key.size() > 256) return fail(errc::unauthorized);
    auto want = sha256_hex(key);
    std::lock_guard lock(mu_);
    Statement s(db_,
                "SELECT k.id, k.stream, s.takeover, k.key_hash FROM stream_keys k JOIN streams s ON s.name = k.stream "
                "WHERE k.key_hash = ?1 AND k.revoked_ms IS NULL");
    s.bind(1, want);
    int rc = s.step();
    if (rc == SQLITE_DONE) return fail(errc::unauthorized);
    if (rc != SQLITE_ROW) return fail(errc::io_error);
    auto stored = s.text(3);
    // The lookup is by hash; compare the full hashes in constant time all the same.
    if (stored.size() != want.size() || CRYPTO_memcmp(stored.data(), want.data(), want.size()) != 0)
      return fail(errc::unauthorized);
    return PublishGrant{s.text(1), s.text(0), s.integer(2) != 0};
  }

  Result<std::vector<KeyInfo>> list_keys() override {
    std::lock_guard lock(mu_);
    Statement s(db_, "SELECT id, stream, created_ms, revoked_ms FROM stream_keys ORDER BY stream, created_ms");
    std::vector<KeyInfo> out;
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) {
      KeyInfo k{s.text(0), s.text(1), s.integer(2), std::nullopt};
      if (!s.is_null(3)) k.revoked_ms = s.integer(3);
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
    Statement s(db_, "UPDATE streams SET takeover = ?1 WHERE name = ?2");
    s.bind(1, std::int64_t{takeover}).bind(2, stream);
    if (s.step() != SQLITE_DONE) return fail(errc::io_error);
    if (sqlite3_changes(db_) == 0) return fail(errc::not_found);
    return {};
  }

 private:
  bool exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK; }

  void migrate() {
    Statement v(db_, "PRAGMA user_version");
    v.step();
    auto version = v.integer(0);
    constexpr std::int64_t latest = std::size(kMigrations);
    for (auto i = version; i < latest; ++i) {
      char* err = nullptr;
      std::string sql = fmt::format("BEGIN IMMEDIATE; {}; PRAGMA user_version = {}; COMMIT;", kMigrations[i], i + 1);
      if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string why = err ? err : "unknown";
        sqlite3_free(err);
        exec("ROLLBACK");
        throw std::runtime_error(fmt::format("key store migration {} failed: {}", i + 1, why));
      }
    }
  }

  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

}  // namespace

bool valid_stream_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

std::unique_ptr<KeyStore> open_sqlite_key_store(const std::string& path) {
  return std::make_unique<SqliteKeyStore>(path);
}

}  // namespace sf::auth
