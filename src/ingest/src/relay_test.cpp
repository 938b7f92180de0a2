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

std::vector<rtmp::amf0::Value> decoded(const std::vector<std::byte>& body) {
  auto v = rtmp::amf0::decode(ByteView(body.data(), body.size()));
  EXPECT_TRUE(v);
  return v ? *v : std::vector<rtmp::amf0::Value>{};
}

TEST(RelayMessage, EpochAndClockRoundTrip) {
  auto epoch = parse_relay_message(decoded(relay_epoch_message(3)));
  ASSERT_TRUE(epoch);
  EXPECT_EQ(epoch->epoch, 3u);
  EXPECT_FALSE(epoch->media_ms);  // not a clock: the receiver hands no clock on
  EXPECT_FALSE(epoch->arrival_ms);
  auto clock = parse_relay_message(decoded(relay_clock_message(4000, 1780000000123)));
  ASSERT_TRUE(clock);
  EXPECT_EQ(clock->media_ms, 4000);
  EXPECT_EQ(clock->arrival_ms, 1780000000123);
  EXPECT_FALSE(clock->epoch);  // not a jump
}

TEST(RelayMessage, OthersAndOutOfRangeAreLeftOut) {
  namespace amf0 = rtmp::amf0;
  EXPECT_FALSE(parse_relay_message({}));
  EXPECT_FALSE(parse_relay_message({"onMetaData", amf0::Object{{"epoch", 1.0}}}));
  EXPECT_FALSE(parse_relay_message({"@setDataFrame", "@streamflex", amf0::Object{{"epoch", 1.0}}}));
  for (const amf0::Value& bad : {amf0::Value(-1.0), amf0::Value(4294967296.0), amf0::Value("1"), amf0::Value(true)}) {
    auto m = parse_relay_message({"@streamflex", amf0::Object{{"epoch", bad}}});
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->epoch);
  }
  auto no_object = parse_relay_message({"@streamflex", 2.0});
  ASSERT_TRUE(no_object);
  EXPECT_FALSE(no_object->epoch);
  // A clock needs both fields in range.
  auto half = parse_relay_message({"@streamflex", amf0::Object{{"media_ms", 5.0}}});
  ASSERT_TRUE(half);
  EXPECT_FALSE(half->media_ms);
  auto late = parse_relay_message({"@streamflex", amf0::Object{{"media_ms", 5.0}, {"arrival_ms", 1e16}}});
  ASSERT_TRUE(late);
  EXPECT_FALSE(late->arrival_ms);
}

TEST(RelayedEpoch, RaisesTheSessionsOwnEpochOnlyUpwards) {
  RelayedEpoch e;
  EXPECT_EQ(e.stamp(0), 0u);
  EXPECT_FALSE(e.raise(0));  // the connection's first epoch: nothing new
  EXPECT_TRUE(e.raise(1));
  EXPECT_EQ(e.stamp(0), 1u);
  EXPECT_FALSE(e.raise(1));  // repeated (after the link dropped its queue): no second discontinuity
  EXPECT_FALSE(e.raise(0));  // never back
  EXPECT_EQ(e.stamp(0), 1u);
  // The receiver's own jumps add up with the relayed ones: either rising raises the frames' epoch.
  EXPECT_EQ(e.stamp(1), 2u);
  EXPECT_TRUE(e.raise(3));
  EXPECT_EQ(e.stamp(1), 4u);
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
