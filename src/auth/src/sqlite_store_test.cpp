#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "sf/auth/store.h"

namespace sf::auth {
namespace {

std::string temp_db() {
  auto dir = std::filesystem::temp_directory_path() /
             ("sf_store_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return (dir / "store.db").string();
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(SqliteStore, CreatedStreamHasItsSettingsAndAWorkingKey) {
  auto store = open_sqlite_store(temp_db());
  StreamRecord in{.name = "match1", .visibility = "token", .latency = "hls", .part_target_ms = 300};
  auto key = store->create_stream(in);
  ASSERT_TRUE(key);
  EXPECT_TRUE(key->secret.starts_with("sfk_"));
  auto got = store->get_stream("match1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->visibility, "token");
  EXPECT_EQ(got->latency, "hls");
  EXPECT_EQ(got->part_target_ms, 300);
  EXPECT_GT(got->created_ms, 0);
  auto grant = store->check_publish_key(key->secret);
  ASSERT_TRUE(grant);
  EXPECT_EQ(grant->stream, "match1");
  EXPECT_EQ(grant->key_id, key->id);
}

TEST(SqliteStore, GrantCarriesTheStreamsLadderProfile) {
  auto store = open_sqlite_store(temp_db());
  auto plain = store->create_stream({.name = "plain"}).value();
  auto tiny = store->create_stream({.name = "tiny", .profile = "tiny"}).value();
  EXPECT_EQ(store->check_publish_key(plain.secret)->profile, "");  // "default": the configured one
  EXPECT_EQ(store->check_publish_key(tiny.secret)->profile, "tiny");
}

TEST(SqliteStore, SecondCreateOfAStreamIsAConflict) {
  auto store = open_sqlite_store(temp_db());
  ASSERT_TRUE(store->create_stream({.name = "a"}));
  EXPECT_EQ(store->create_stream({.name = "a"}).error(), errc::conflict);
}

TEST(SqliteStore, InvalidSettingsAreRefused) {
  auto store = open_sqlite_store(temp_db());
  EXPECT_EQ(store->create_stream({.name = "a", .visibility = "secret"}).error(), errc::invalid_argument);
  EXPECT_EQ(store->create_stream({.name = "a", .latency = "dash"}).error(), errc::invalid_argument);
  EXPECT_EQ(store->create_stream({.name = "a", .part_target_ms = 10}).error(), errc::invalid_argument);
  EXPECT_EQ(store->create_stream({.name = "x'); DROP TABLE streams;--"}).error(), errc::invalid_argument);
  EXPECT_TRUE(store->list_streams()->empty());
}

TEST(SqliteStore, HostileLookupsAreJustUnknownNames) {
  auto store = open_sqlite_store(temp_db());
  ASSERT_TRUE(store->create_stream({.name = "a"}));
  EXPECT_EQ(store->get_stream("a' OR '1'='1").error(), errc::not_found);
  EXPECT_EQ(store->delete_stream("a' OR 1=1;--").error(), errc::not_found);
  EXPECT_EQ(store->list_streams()->size(), 1u);
}

TEST(SqliteStore, UpdateReplacesSettingsButKeepsCreation) {
  auto store = open_sqlite_store(temp_db());
  ASSERT_TRUE(store->create_stream({.name = "a"}));
  auto before = store->get_stream("a").value();
  auto changed = before;
  changed.visibility = "token";
  changed.takeover = true;
  changed.created_ms = 1;
  auto after = store->update_stream(changed);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->visibility, "token");
  EXPECT_TRUE(after->takeover);
  EXPECT_EQ(after->created_ms, before.created_ms);
  EXPECT_EQ(store->update_stream({.name = "nosuch"}).error(), errc::not_found);
}

TEST(SqliteStore, DeleteRemovesTheStreamAndItsKeys) {
  auto store = open_sqlite_store(temp_db());
  auto key = store->create_stream({.name = "a"}).value();
  ASSERT_TRUE(store->delete_stream("a"));
  EXPECT_EQ(store->get_stream("a").error(), errc::not_found);
  EXPECT_FALSE(store->check_publish_key(key.secret));
  EXPECT_EQ(store->delete_stream("a").error(), errc::not_found);
}

TEST(SqliteStore, RotatedKeyWorksDuringGraceOnly) {
  auto store = open_sqlite_store(temp_db());
  auto first = store->create_stream({.name = "a"}).value();
  auto rotated = store->rotate_stream_key("a", first.id, 60000);
  ASSERT_TRUE(rotated);
  EXPECT_EQ(rotated->old_id, first.id);
  EXPECT_NEAR(double(rotated->old_expires_ms), double(now_ms() + 60000), 5000);
  EXPECT_TRUE(store->check_publish_key(first.secret));
  EXPECT_TRUE(store->check_publish_key(rotated->key.secret));
  auto keys = store->list_stream_keys("a").value();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].state(now_ms()), "grace");
  EXPECT_EQ(keys[1].state(now_ms()), "active");
  // Rotating a key already in grace is refused; rotating the new one with no grace ends it now.
  EXPECT_EQ(store->rotate_stream_key("a", first.id, 1000).error(), errc::conflict);
  auto again = store->rotate_stream_key("a", rotated->key.id, 0);
  ASSERT_TRUE(again);
  EXPECT_FALSE(store->check_publish_key(rotated->key.secret));
  EXPECT_TRUE(store->check_publish_key(again->key.secret));
  EXPECT_EQ(store->list_stream_keys("a").value()[1].state(now_ms()), "revoked");
}

TEST(SqliteStore, RevokedStreamKeyStopsAtOnce) {
  auto store = open_sqlite_store(temp_db());
  auto first = store->create_stream({.name = "a"}).value();
  auto second = store->create_stream_key("a").value();
  ASSERT_TRUE(store->revoke_stream_key("a", first.id));
  EXPECT_FALSE(store->check_publish_key(first.secret));
  EXPECT_TRUE(store->check_publish_key(second.secret));
  EXPECT_EQ(store->revoke_stream_key("a", first.id).error(), errc::conflict);
  EXPECT_EQ(store->revoke_stream_key("b", second.id).error(), errc::not_found);
  EXPECT_EQ(store->create_stream_key("nosuch").error(), errc::not_found);
}

TEST(SqliteStore, ApiKeysCarryScopesAndCanBeRevoked) {
  auto store = open_sqlite_store(temp_db());
  auto k = store->create_api_key("ci", {"streams", "tokens", "streams"});
  ASSERT_TRUE(k);
  EXPECT_TRUE(k->secret.starts_with("sfa_"));
  auto rec = store->check_api_key(k->secret);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->scopes, (std::vector<std::string>{"streams", "tokens"}));
  EXPECT_TRUE(rec->has_scope("tokens"));
  EXPECT_FALSE(rec->has_scope("admin"));
  EXPECT_EQ(store->check_api_key(k->secret + "x").error(), errc::unauthorized);
  EXPECT_EQ(store->create_api_key("bad", {"root"}).error(), errc::invalid_argument);
  EXPECT_EQ(store->create_api_key("", {"admin"}).error(), errc::invalid_argument);
  ASSERT_TRUE(store->revoke_api_key(k->id));
  EXPECT_EQ(store->check_api_key(k->secret).error(), errc::unauthorized);
  EXPECT_EQ(store->revoke_api_key(k->id).error(), errc::not_found);
  ASSERT_EQ(store->list_api_keys()->size(), 1u);
  EXPECT_TRUE(store->list_api_keys()->front().revoked_ms);
}

TEST(SqliteStore, AdminScopeHasEveryScope) {
  ApiKeyRecord r{.scopes = {"admin"}};
  EXPECT_TRUE(r.has_scope("streams"));
  EXPECT_TRUE(r.has_scope("tokens"));
}

TEST(SqliteStore, DeliveriesAreListedNewestFirstAndUpdated) {
  auto store = open_sqlite_store(temp_db());
  auto a = store->add_delivery({.event = "on_publish", .stream = "a", .url = "http://x/"}).value();
  auto b = store->add_delivery({.event = "on_publish_done", .stream = "a", .url = "http://x/"}).value();
  WebhookDelivery upd{.id = a, .state = "delivered", .outcome = "allow", .attempts = 1, .last_status = 200};
  ASSERT_TRUE(store->update_delivery(upd));
  auto list = store->list_deliveries(10).value();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, b);
  EXPECT_EQ(list[1].state, "delivered");
  EXPECT_EQ(list[1].outcome, "allow");
  EXPECT_EQ(list[1].last_status, 200);
}

TEST(SqliteStore, EverythingSurvivesReopening) {
  auto path = temp_db();
  NewSecret key, api;
  {
    auto store = open_sqlite_store(path);
    key = store->create_stream({.name = "a", .visibility = "token"}).value();
    api = store->create_api_key("ops", {"admin"}).value();
  }
  auto store = open_sqlite_store(path);
  EXPECT_EQ(store->get_stream("a")->visibility, "token");
  EXPECT_TRUE(store->check_publish_key(key.secret));
  EXPECT_TRUE(store->check_api_key(api.secret));
}

// A database made by the first schema (before stream settings) migrates in place: streams and
// keys keep working and get the default settings.
TEST(SqliteStore, MigratesTheFirstSchema) {
  auto path = temp_db();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // The key "sfk_old", stored as its SHA-256.
  const char* v1 = R"(CREATE TABLE streams (name TEXT PRIMARY KEY, takeover INTEGER NOT NULL DEFAULT 0,
                        created_ms INTEGER NOT NULL);
                      CREATE TABLE stream_keys (id TEXT PRIMARY KEY, stream TEXT NOT NULL REFERENCES streams(name),
                        key_hash TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL, revoked_ms INTEGER);
                      CREATE INDEX stream_keys_stream ON stream_keys(stream);
                      INSERT INTO streams VALUES('old', 1, 1000);
                      INSERT INTO stream_keys VALUES('k1', 'old',
                        'eed74965d30e15de8096505a9648e6ada6080519fd0feff0902070f097881514', 1000, NULL);
                      PRAGMA user_version = 1;)";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = open_sqlite_store(path);
  auto s = store->get_stream("old");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->takeover);
  EXPECT_EQ(s->visibility, "public");
  EXPECT_EQ(s->profile, "default");
  EXPECT_EQ(s->updated_ms, 1000);
  auto keys = store->list_stream_keys("old").value();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].state(now_ms()), "active");
  auto grant = store->check_publish_key("sfk_old");
  ASSERT_TRUE(grant);
  EXPECT_EQ(grant->stream, "old");
  EXPECT_TRUE(store->create_api_key("ops", {"admin"}));
}

}  // namespace
}  // namespace sf::auth
