#include "sf/core/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace sf {
namespace {

struct Fixture {
  std::string listen = "127.0.0.1:1935";
  std::int64_t max = 10;
  std::chrono::milliseconds idle{1000};
  bool flag = false;
  ConfigSchema schema;
  Fixture() {
    schema.add_endpoint("ingest.listen", "where", listen);
    schema.add("ingest.max", "how many", max, 1, 100);
    schema.add("ingest.idle", "how long", idle, std::chrono::milliseconds(1), std::chrono::milliseconds(60000));
    schema.add("demo.enabled", "on", flag);
  }
};

TEST(ConfigSchema, DefaultsStandWithoutSources) {
  Fixture f;
  EXPECT_EQ(f.schema.load("", nullptr), "");
  EXPECT_EQ(f.max, 10);
}

TEST(ConfigSchema, EnvironmentOverridesAndBadValueNamesTheKey) {
  Fixture f;
  std::string a = "STREAMFLEX_INGEST_MAX=42", b = "STREAMFLEX_INGEST_IDLE=2s";
  char* env[] = {a.data(), b.data(), nullptr};
  EXPECT_EQ(f.schema.load("", env), "");
  EXPECT_EQ(f.max, 42);
  EXPECT_EQ(f.idle, std::chrono::milliseconds(2000));
  std::string c = "STREAMFLEX_INGEST_MAX=abc";
  char* bad[] = {c.data(), nullptr};
  auto err = f.schema.load("", bad);
  EXPECT_NE(err.find("ingest.max"), std::string::npos) << err;
}

TEST(ConfigSchema, FileThenFlagsWin) {
  Fixture f;
  auto path = std::string(::testing::TempDir()) + "/sf_config_test.toml";
  std::ofstream(path) << "[ingest]\nmax = 7\nlisten = \"0.0.0.0:2000\"\n[demo]\nenabled = true\n";
  CLI::App app;
  f.schema.add_flags(app);
  const char* argv[] = {"x", "--ingest.max=9"};
  app.parse(2, argv);
  EXPECT_EQ(f.schema.load(path, nullptr), "");
  EXPECT_EQ(f.max, 9);
  EXPECT_EQ(f.listen, "0.0.0.0:2000");
  EXPECT_TRUE(f.flag);
}

TEST(ConfigSchema, RefusesOutOfRangeUnknownAndWrongType) {
  {
    Fixture f;
    auto path = std::string(::testing::TempDir()) + "/sf_config_range.toml";
    std::ofstream(path) << "[ingest]\nmax = 1000\n";
    EXPECT_NE(f.schema.load(path, nullptr).find("ingest.max"), std::string::npos);
  }
  {
    Fixture f;
    auto path = std::string(::testing::TempDir()) + "/sf_config_unknown.toml";
    std::ofstream(path) << "[ingest]\nmaxx = 1\n";
    EXPECT_NE(f.schema.load(path, nullptr).find("ingest.maxx"), std::string::npos);
  }
  {
    Fixture f;
    auto path = std::string(::testing::TempDir()) + "/sf_config_type.toml";
    std::ofstream(path) << "[ingest]\nlisten = 5\n";
    EXPECT_NE(f.schema.load(path, nullptr).find("ingest.listen"), std::string::npos);
  }
}

TEST(ParseDuration, ReadsUnits) {
  std::chrono::milliseconds d{};
  ASSERT_TRUE(parse_duration("1500ms", d));
  EXPECT_EQ(d.count(), 1500);
  ASSERT_TRUE(parse_duration("2s", d));
  EXPECT_EQ(d.count(), 2000);
  ASSERT_TRUE(parse_duration("1m", d));
  EXPECT_EQ(d.count(), 60000);
  EXPECT_FALSE(parse_duration("soon", d));
  EXPECT_FALSE(parse_duration("-5s", d));
}

}  // namespace
}  // namespace sf
