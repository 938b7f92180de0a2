#include "timeline.h"

#include <gtest/gtest.h>

namespace sf::ingest {
namespace {

using namespace std::chrono_literals;
using T = Timeline::Track;
using V = Timeline::Verdict;

TEST(Timeline, PassesMonotonicTimesThrough) {
  Timeline tl(3s);
  EXPECT_EQ(tl.map(T::video, 0).ms, 0);
  EXPECT_EQ(tl.map(T::video, 33).ms, 33);
  EXPECT_EQ(tl.map(T::audio, 21).ms, 21);
  EXPECT_EQ(tl.map(T::video, 67).ms, 67);
}

TEST(Timeline, UnwrapsThe32BitWrap) {
  Timeline tl(3s);
  tl.map(T::video, 0xFFFFFFF0u);
  auto r = tl.map(T::video, 0x10u);  // 32 ms later, after the wrap
  EXPECT_EQ(r.verdict, V::ok);
  EXPECT_EQ(r.ms, 0xFFFFFFF0ll + 0x20);
}

TEST(Timeline, RebasesAJumpAndKeepsTracksTogether) {
  Timeline tl(3s);
  tl.map(T::video, 1000);
  tl.map(T::audio, 1000);
  tl.map(T::video, 1040);
  tl.map(T::audio, 1021);
  auto v = tl.map(T::video, 900000);  // encoder restarted with a far timestamp
  EXPECT_EQ(v.verdict, V::jumped);
  EXPECT_EQ(v.ms, 1080);
  auto a = tl.map(T::audio, 899981);  // audio 19 ms before the video frame, as on input
  EXPECT_EQ(a.verdict, V::ok);
  EXPECT_EQ(a.ms, 1061);
}

TEST(Timeline, BackwardJumpIsRebasedForward) {
  Timeline tl(3s);
  tl.map(T::video, 50000);
  tl.map(T::video, 50033);
  auto r = tl.map(T::video, 10);
  EXPECT_EQ(r.verdict, V::jumped);
  EXPECT_EQ(r.ms, 50066);
  EXPECT_EQ(tl.map(T::video, 43).ms, 50099);
}

TEST(Timeline, SmallStepBackIsLate) {
  Timeline tl(3s);
  tl.map(T::audio, 1000);
  EXPECT_EQ(tl.map(T::audio, 990).verdict, V::late);
  auto next = tl.map(T::audio, 1021);
  EXPECT_EQ(next.verdict, V::ok);
  EXPECT_EQ(next.ms, 1021);
}

using M = Timeline::JumpMode;

TEST(Timeline, RebaseModeKeepsEpochZeroAcrossAJump) {
  Timeline tl(3s, M::rebase);
  tl.map(T::video, 1000);
  auto v = tl.map(T::video, 900000);
  EXPECT_EQ(v.verdict, V::jumped);
  EXPECT_EQ(v.epoch, 0u);
  EXPECT_EQ(tl.map(T::audio, 900010).epoch, 0u);
}

TEST(Timeline, DiscontinuityModeStartsOneEpochPerJumpForBothTracks) {
  Timeline tl(3s, M::discontinuity);
  EXPECT_EQ(tl.map(T::video, 1000).epoch, 0u);
  EXPECT_EQ(tl.map(T::audio, 1000).epoch, 0u);
  tl.map(T::video, 1040);
  tl.map(T::audio, 1021);
  auto v = tl.map(T::video, 900000);
  EXPECT_EQ(v.verdict, V::jumped);
  EXPECT_EQ(v.epoch, 1u);
  EXPECT_EQ(v.ms, 1080);              // the times still go on from where they were: A/V sync is kept
  auto a = tl.map(T::audio, 899981);  // audio's own jump, absorbed by the shared offset
  EXPECT_EQ(a.verdict, V::ok);
  EXPECT_EQ(a.epoch, 1u);
  EXPECT_EQ(a.ms, 1061);
  EXPECT_EQ(tl.map(T::video, 900040).epoch, 1u);
}

TEST(Timeline, DiscontinuityModeCountsBackwardJumpsToo) {
  Timeline tl(3s, M::discontinuity);
  tl.map(T::video, 50000);
  tl.map(T::video, 50033);
  auto back = tl.map(T::video, 10);
  EXPECT_EQ(back.verdict, V::jumped);
  EXPECT_EQ(back.epoch, 1u);
  EXPECT_EQ(back.ms, 50066);
  auto forward = tl.map(T::video, 100000);
  EXPECT_EQ(forward.verdict, V::jumped);
  EXPECT_EQ(forward.epoch, 2u);
  EXPECT_EQ(forward.ms, 50099);
}

TEST(Timeline, DiscontinuityModeLeavesLateFramesAndWrapsAlone) {
  Timeline tl(3s, M::discontinuity);
  tl.map(T::video, 0xFFFFFFF0u);
  EXPECT_EQ(tl.map(T::video, 0x10u).epoch, 0u);  // a wrap is no jump
  EXPECT_EQ(tl.map(T::video, 0x08u).verdict, V::late);
  EXPECT_EQ(tl.map(T::video, 0x30u).epoch, 0u);
}

}  // namespace
}  // namespace sf::ingest
