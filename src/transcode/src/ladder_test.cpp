#include "sf/transcode/ladder.h"

#include <gtest/gtest.h>

namespace sf::transcode {
namespace {

std::vector<std::string> names(const std::vector<PlannedRung>& plan) {
  std::vector<std::string> out;
  for (auto& p : plan) out.push_back(p.rung.name);
  return out;
}

TEST(Ladder, DefaultFor1080pIsFiveRungsLargestFirst) {
  auto plan = plan_ladder(default_profile(), 1920, 1080, 30);
  EXPECT_EQ(names(plan), (std::vector<std::string>{"1080p", "720p", "480p", "360p", "160p"}));
  EXPECT_EQ(plan[0].width, 1920u);
  EXPECT_EQ(plan[1].width, 1280u);
  EXPECT_EQ(plan[2].width, 854u);
  EXPECT_EQ(plan[3].width, 640u);
  EXPECT_EQ(plan[4].width, 284u);
  EXPECT_EQ(plan[4].height, 160u);
}

TEST(Ladder, NeverUpscales) {
  auto plan = plan_ladder(default_profile(), 1280, 720, 30);
  EXPECT_EQ(names(plan), (std::vector<std::string>{"720p", "480p", "360p", "160p"}));
  for (auto& p : plan) {
    EXPECT_LE(p.width, 1280u);
    EXPECT_LE(p.height, 720u);
  }
}

TEST(Ladder, SourceSmallerThanEveryRungGetsTheSmallestAtItsOwnSize) {
  auto plan = plan_ladder(default_profile(), 200, 112, 25);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].rung.name, "160p");
  EXPECT_EQ(plan[0].width, 200u);
  EXPECT_EQ(plan[0].height, 112u);
}

TEST(Ladder, KeepsTheSourceAspectRatio) {
  auto plan = plan_ladder(default_profile(), 1440, 1080, 30);  // 4:3
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan[0].width, 1440u);
  EXPECT_EQ(plan[0].height, 1080u);
  EXPECT_EQ(plan[1].width, 960u);
  EXPECT_EQ(plan[1].height, 720u);
  for (auto& p : plan) {
    EXPECT_EQ(p.width % 2, 0u);
    EXPECT_EQ(p.height % 2, 0u);
    EXPECT_NEAR(double(p.width) / p.height, 4.0 / 3.0, 0.03);
  }
}

TEST(Ladder, PortraitSourceFitsTheBox) {
  auto plan = plan_ladder(default_profile(), 1080, 1920, 30);
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan[0].height, 1080u);
  EXPECT_EQ(plan[0].width, 608u);
}

TEST(Ladder, FrameRateCappedAtTheRungsMaximum) {
  auto plan = plan_ladder(default_profile(), 1920, 1080, 120);
  EXPECT_DOUBLE_EQ(plan[0].fps, 60);
  EXPECT_DOUBLE_EQ(plan[4].fps, 30);
  plan = plan_ladder(default_profile(), 1920, 1080, 25);
  for (auto& p : plan) EXPECT_DOUBLE_EQ(p.fps, 25);
}

TEST(Ladder, PassthroughPlansNothing) {
  EXPECT_TRUE(plan_ladder(passthrough_profile(), 1920, 1080, 30).empty());
}

TEST(Ladder, DeclaredPeakIsAboveTheTarget) {
  for (auto& r : default_profile().rungs) {
    EXPECT_GT(r.maxrate, r.bitrate);
    EXPECT_GE(r.bufsize, r.maxrate / 2);
  }
}

TEST(Ladder, ParsesProfiles) {
  auto p =
      parse_profiles("mobile=360p:640x360@30:800k:880k:faster:main:3.1,160p:284x160@15:145k; hd=720p:1280x720@60:3M");
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].name, "mobile");
  ASSERT_EQ((*p)[0].rungs.size(), 2u);
  EXPECT_EQ((*p)[0].rungs[0].maxrate, 880000);
  EXPECT_EQ((*p)[0].rungs[0].preset, "faster");
  EXPECT_EQ((*p)[0].rungs[0].level, "3.1");
  EXPECT_EQ((*p)[0].rungs[1].max_fps, 15);
  EXPECT_EQ((*p)[0].rungs[1].maxrate, 159500);
  EXPECT_EQ((*p)[1].rungs[0].bitrate, 3000000);
}

TEST(Ladder, SourceRungFromTextAndBuiltIn) {
  std::string error;
  auto p = parse_profiles("src=source,360p:640x360@30:800k; alone=source", &error);
  ASSERT_TRUE(p) << error;
  ASSERT_EQ(p->size(), 2u);
  EXPECT_TRUE((*p)[0].source);
  EXPECT_TRUE((*p)[0].transcode);
  ASSERT_EQ((*p)[0].rungs.size(), 1u);
  EXPECT_EQ((*p)[0].rungs[0].name, "360p");
  EXPECT_FALSE((*p)[1].transcode);  // the source alone is passthrough
  EXPECT_FALSE(parse_profiles("x=source,source", &error));
  EXPECT_NE(error.find("twice"), std::string::npos);
  EXPECT_FALSE(default_profile().source);
  auto d = default_source_profile();
  EXPECT_EQ(d.name, "default-source");
  EXPECT_TRUE(d.source && d.transcode);
  EXPECT_EQ(d.rungs.size(), default_profile().rungs.size());
}

TEST(Ladder, SourceRungTakesTheRungOfTheSourcesSize) {
  // 1280x720: the 720p rung would be the source's size; the source rung is listed instead.
  auto plan = plan_ladder(default_source_profile(), 1280, 720, 30);
  EXPECT_EQ(names(plan), (std::vector<std::string>{"480p", "360p", "160p"}));
  // 1366x768: 720p is smaller than the source, so it stays.
  plan = plan_ladder(default_source_profile(), 1366, 768, 30);
  EXPECT_EQ(names(plan), (std::vector<std::string>{"720p", "480p", "360p", "160p"}));
  // A source smaller than every rung: the smallest at the source's size would be the source again.
  EXPECT_TRUE(plan_ladder(default_source_profile(), 200, 112, 25).empty());
}

TEST(Ladder, RejectsBadProfilesNamingTheItem) {
  std::string error;
  EXPECT_FALSE(parse_profiles("x=720p:1280by720@30:3M", &error));
  EXPECT_NE(error.find("720p"), std::string::npos);
  EXPECT_FALSE(parse_profiles("x=720p:1280x720@30:fast", &error));
  EXPECT_FALSE(parse_profiles("x=720p:1280x720@30:3M:1M", &error));  // maxrate below bitrate
  EXPECT_FALSE(parse_profiles("novalue", &error));
  EXPECT_FALSE(parse_profiles("x=720p:99999x720@30:3M", &error));
}

}  // namespace
}  // namespace sf::transcode
