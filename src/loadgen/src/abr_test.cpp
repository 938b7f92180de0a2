#include "abr.h"

#include <gtest/gtest.h>

namespace sf::loadgen {
namespace {

// Renditions listed highest first, as the origin's multivariant playlist lists a ladder.
const std::vector<std::uint64_t> kLadder{6'000'000, 3'000'000, 1'000'000};

TEST(BandwidthPlan, ParsesOneRateARangeAndAList) {
  auto one = BandwidthPlan::parse("3M");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->of(7, 10), 3e6);
  auto range = BandwidthPlan::parse("1M-9M");
  ASSERT_TRUE(range);
  EXPECT_EQ(range->of(0, 5), 1e6);
  EXPECT_EQ(range->of(4, 5), 9e6);
  EXPECT_EQ(range->of(2, 5), 5e6);
  auto list = BandwidthPlan::parse("500k,2M");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->of(0, 4), 5e5);
  EXPECT_EQ(list->of(3, 4), 2e6);
}

TEST(BandwidthPlan, RefusesGarbageZeroAndBackwardRanges) {
  for (const char* bad : {"", "fast", "0", "-3M", "3X", "9M-1M", "1M,,2M"})
    EXPECT_FALSE(BandwidthPlan::parse(bad)) << bad;
}

TEST(Abr, LinkSlowerThanTheNetworkStretchesADownload) {
  Abr abr(kLadder, 2e6);
  EXPECT_DOUBLE_EQ(abr.link_seconds(250'000, 0.01), 1.0);  // 2 Mbit over 2 Mbit/s
  EXPECT_DOUBLE_EQ(abr.link_seconds(250'000, 1.5), 1.5);   // the network was slower still
}

TEST(Abr, StartsLowestAndClimbsToTheBestThatFitsWithMargin) {
  Abr abr(kLadder, 5e6);
  EXPECT_EQ(abr.current(), 2u);                               // 1 Mbit/s
  for (int i = 0; i < 3; ++i) abr.on_download(625'000, 1.0);  // 5 Mbit/s measured
  auto next = abr.decide();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 1u);  // 3 Mbit/s * 1.5 <= 5; 6 Mbit/s does not fit
  abr.switched();
  EXPECT_EQ(abr.current(), 1u);
  EXPECT_EQ(abr.ups(), 1u);
  for (int i = 0; i < 5; ++i) abr.on_download(625'000, 1.0);
  EXPECT_FALSE(abr.decide());  // stays: no oscillation at a steady rate
}

TEST(Abr, WaitsHoldDownloadsAfterASwitchBeforeGoingUpAgain) {
  AbrSettings s;
  s.hold = 3;
  Abr abr(kLadder, 0, s);
  for (int i = 0; i < 3; ++i) abr.on_download(5'000'000, 1.0);  // 40 Mbit/s
  ASSERT_TRUE(abr.decide());
  abr.switched();
  EXPECT_EQ(abr.current(), 0u);  // straight to the top: everything fits
  EXPECT_EQ(abr.ups(), 1u);
}

TEST(Abr, DropsAtOnceWhenTheRateFallsBelowTheCurrentRendition) {
  Abr abr(kLadder, 0);
  for (int i = 0; i < 3; ++i) abr.on_download(5'000'000, 1.0);
  abr.decide();
  abr.switched();
  ASSERT_EQ(abr.current(), 0u);
  for (int i = 0; i < 3; ++i) abr.on_download(250'000, 1.0);  // 2 Mbit/s now
  auto next = abr.decide();
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 2u);  // 3 Mbit/s does not fit 2 Mbit/s: the lowest
  abr.switched();
  EXPECT_EQ(abr.downs(), 1u);
}

TEST(Abr, BetweenTheMarginsItStays) {
  Abr abr(kLadder, 0);
  for (int i = 0; i < 3; ++i) abr.on_download(500'000, 1.0);  // 4 Mbit/s: 3M fits, not 1.5x
  EXPECT_FALSE(abr.decide());
  EXPECT_EQ(abr.current(), 2u);
}

}  // namespace
}  // namespace sf::loadgen
