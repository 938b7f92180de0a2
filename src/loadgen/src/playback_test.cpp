#include "playback.h"

#include <gtest/gtest.h>

#include "histogram.h"

namespace sf::loadgen {
namespace {

TEST(Playback, StartsOnceTheStartThresholdIsBuffered) {
  Playback p(1, 0.5);
  p.set_start(100.0, 1.5);
  p.on_media(0, 101.0, 10.0);
  EXPECT_FALSE(p.started());
  p.on_media(0, 101.5, 10.2);
  EXPECT_TRUE(p.started());
  EXPECT_TRUE(p.playing());
  EXPECT_DOUBLE_EQ(p.started_at(), 10.2);
  p.advance(11.2);
  EXPECT_DOUBLE_EQ(p.position(), 101.0);
  EXPECT_DOUBLE_EQ(p.buffered(), 0.5);
  EXPECT_EQ(p.stalls(), 0);
}

TEST(Playback, AStallIsTimedFromWhenTheBufferRanDry) {
  Playback p(1, 0.5);
  p.set_start(100.0, 1.0);
  p.on_media(0, 101.0, 0.0);  // plays 100..101, dry at t = 1.0
  p.on_media(0, 101.2, 2.0);  // 0.2 s is not enough to resume
  EXPECT_EQ(p.stalls(), 1);
  EXPECT_FALSE(p.playing());
  EXPECT_DOUBLE_EQ(p.stall_seconds(2.0), 1.0);
  p.on_media(0, 101.5, 2.5);  // 0.5 s buffered: resumes
  EXPECT_TRUE(p.playing());
  EXPECT_DOUBLE_EQ(p.stall_seconds(10.0), 1.5);
  EXPECT_DOUBLE_EQ(p.position(), 101.0);
}

TEST(Playback, SteadyDeliveryNeverStalls) {
  Playback p(1, 0.5);
  p.set_start(0.0, 1.5);
  p.on_media(0, 1.5, 0.0);
  for (int i = 1; i <= 100; ++i) p.on_media(0, 1.5 + 0.5 * i, 0.5 * i);
  p.advance(50.0);
  EXPECT_EQ(p.stalls(), 0);
  EXPECT_DOUBLE_EQ(p.buffered(), 1.5);
}

TEST(Playback, TheShortestTrackBoundsTheBuffer) {
  Playback p(2, 0.5);
  p.set_start(0.0, 1.0);
  p.on_media(0, 3.0, 0.0);
  EXPECT_FALSE(p.started());  // no audio yet
  p.on_media(1, 0.5, 0.1);
  EXPECT_FALSE(p.started());
  p.on_media(1, 1.0, 0.2);
  EXPECT_TRUE(p.started());
  p.advance(1.5);
  EXPECT_EQ(p.stalls(), 1);  // audio ran out at 1.0
}

TEST(Histogram, QuantilesWithinTheBucketError) {
  Histogram h;
  for (int i = 1; i <= 1000; ++i) h.add_us(static_cast<std::uint64_t>(i) * 1000);  // 1..1000 ms
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_NEAR(h.quantile_us(0.50), 500000, 500000 * 0.02);
  EXPECT_NEAR(h.quantile_us(0.99), 990000, 990000 * 0.02);
  EXPECT_EQ(h.max_us(), 1000000u);
  EXPECT_LE(h.quantile_us(1.0), 1000000);
  Histogram small;
  small.add_us(7);
  EXPECT_EQ(small.quantile_us(0.5), 7);  // exact below 128 µs
  Histogram merged;
  merged.merge(h);
  merged.merge(small);
  EXPECT_EQ(merged.count(), 1001u);
  EXPECT_EQ(Histogram().quantile_us(0.5), 0);
}

}  // namespace
}  // namespace sf::loadgen
