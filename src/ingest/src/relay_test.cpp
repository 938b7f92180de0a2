#include "relay.h"

#include <gtest/gtest.h>

#include "sf/core/result.h"

namespace sf::ingest {
namespace {

TEST(RelayUrl, AppOnlyPublishesUnderTheStreamName) {
  auto t = parse_relay_url("rtmp://10.0.0.2:1936/live");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "10.0.0.2");
  EXPECT_EQ(t->port, 1936);
  EXPECT_EQ(t->app, "live");
  EXPECT_EQ(t->tc_url, "rtmp://10.0.0.2:1936/live");
  EXPECT_EQ(relay_publish_name(*t, "match1", ""), "match1");
  EXPECT_EQ(relay_publish_name(*t, "match1", "s3cret"), "match1:s3cret");
}

TEST(RelayUrl, NameTemplateAndDefaultPort) {
  auto t = parse_relay_url("rtmp://cdn.example/app/{stream}_hd");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->port, 1935);
  EXPECT_EQ(t->app, "app");
  EXPECT_EQ(relay_publish_name(*t, "m", ""), "m_hd");
  auto fixed = parse_relay_url("rtmp://[::1]:1937/live/sfk_abc");
  ASSERT_TRUE(fixed);
  EXPECT_EQ(fixed->host, "::1");
  EXPECT_EQ(fixed->port, 1937);
  EXPECT_EQ(relay_publish_name(*fixed, "m", ""), "sfk_abc");
}

TEST(RelaySettings, TheStreamsSettingsAsAQueryOnlyThoseItHas) {
  PublishInfo info;
  EXPECT_EQ(relay_settings_query(info), "");
  info.profile = "sports_hd";
  info.latency = "ll-hls";
  info.part_target_ms = 300;
  info.segment_target_ms = 1000;
  EXPECT_EQ(relay_settings_query(info), "profile=sports_hd&latency=ll-hls&part_ms=300&segment_ms=1000");
  info.profile = "a&b=c";  // never from the store; never sent as another key
  info.latency = "weird";
  info.part_target_ms = 0;
  EXPECT_EQ(relay_settings_query(info), "segment_ms=1000");
}

TEST(RelayUrl, RejectsMalformed) {
  for (const char* bad : {"http://h/live", "rtmp://", "rtmp://h", "rtmp://h/", "rtmp:///live", "rtmp://h:0/live",
                          "rtmp://h:70000/live", "rtmp://h:x/live", "rtmp://h:/live", "rtmp://[::1/live"}) {
    auto t = parse_relay_url(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error(), errc::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace sf::ingest
