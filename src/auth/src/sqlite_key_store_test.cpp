#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sf/auth/key_store.h"

namespace sf::auth {
namespace {

std::string temp_db() {
  auto dir = std::filesystem::temp_directory_path() /
             ("sf_keys_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  return (dir / "keys.db").string();
}

TEST(SqliteKeyStore, CreatedKeyGrantsItsStream) {
  auto store = open_sqlite_key_store(temp_db());
  auto key = store->create_key("match1");
  ASSERT_TRUE(key);
  auto grant = store->check_publish_key(*key);
  ASSERT_TRUE(grant);
  EXPECT_EQ(grant->stream, "match1");
  EXPECT_FALSE(grant->takeover);
}

TEST(SqliteKeyStore, UnknownKeyIsUnauthorized) {
  auto store = open_sqlite_key_store(temp_db());
  ASSERT_TRUE(store->create_key("match1"));
  auto grant = store->check_publish_key("sfk_not_a_key");
  ASSERT_FALSE(grant);
  EXPECT_EQ(grant.error(), errc::unauthorized);
}

TEST(SqliteKeyStore, RevokedKeyIsUnauthorized) {
  auto store = open_sqlite_key_store(temp_db());
  auto key = store->create_key("match1");
  ASSERT_TRUE(key);
  ASSERT_EQ(store->revoke("match1").value_or(0), 1);
  EXPECT_EQ(store->check_publish_key(*key).error(), errc::unauthorized);
}

TEST(SqliteKeyStore, StoresOnlyTheHash) {
  auto path = temp_db();
  std::string key;
  {
    auto store = open_sqlite_key_store(path);
    key = store->create_key("match1").value();
  }
  std::string content;
  for (auto& f : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path())) {
    std::ifstream in(f.path(), std::ios::binary);
    content += std::string(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_EQ(content.find(key), std::string::npos);
}

TEST(SqliteKeyStore, SecondHandleSeesKeysOfTheFirst) {
  auto path = temp_db();
  auto a = open_sqlite_key_store(path);
  auto b = open_sqlite_key_store(path);
  auto key = a->create_key("match1").value();
  EXPECT_TRUE(b->check_publish_key(key));
  ASSERT_TRUE(b->revoke("match1"));
  EXPECT_FALSE(a->check_publish_key(key));
}

TEST(SqliteKeyStore, TakeoverIsPerStream) {
  auto store = open_sqlite_key_store(temp_db());
  auto key = store->create_key("match1").value();
  ASSERT_TRUE(store->set_takeover("match1", true));
  EXPECT_TRUE(store->check_publish_key(key)->takeover);
  EXPECT_EQ(store->set_takeover("nosuch", true).error(), errc::not_found);
}

TEST(SqliteKeyStore, RejectsHostileStreamNames) {
  auto store = open_sqlite_key_store(temp_db());
  EXPECT_EQ(store->create_key("a'; DROP TABLE streams;--").error(), errc::invalid_argument);
  EXPECT_EQ(store->create_key("../etc").error(), errc::invalid_argument);
  EXPECT_EQ(store->create_key(std::string(65, 'a')).error(), errc::invalid_argument);
}

TEST(SqliteKeyStore, RevokeOfUnknownIsNotFound) {
  auto store = open_sqlite_key_store(temp_db());
  EXPECT_EQ(store->revoke("nothing").error(), errc::not_found);
}

}  // namespace
}  // namespace sf::auth
