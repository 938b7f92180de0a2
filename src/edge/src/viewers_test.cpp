#include "viewers.h"

#include <gtest/gtest.h>

#include <string>

namespace sf::edge {
namespace {

TEST(ViewerCount, DistinctTokensOrAddressAndAgentArePlayersOfTheirStream) {
  ViewerCount v;
  v.seen("a", "", "10.0.0.1", "hls.js", 1000);
  v.seen("a", "", "10.0.0.1", "hls.js", 1001);  // the same player again
  v.seen("a", "", "10.0.0.1", "ffmpeg", 1002);  // another player behind the same address
  v.seen("a", "", "10.0.0.2", "hls.js", 1003);
  v.seen("a", "tok1", "10.0.0.1", "hls.js", 1004);  // a token names its viewer whatever the address
  v.seen("a", "tok1", "10.0.0.9", "other", 1005);
  v.seen("b", "", "10.0.0.1", "hls.js", 1006);
  v.seen("", "", "10.0.0.1", "hls.js", 1007);  // not a stream
  auto counts = v.counts(2000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts["a"], 4);
  EXPECT_EQ(counts["b"], 1);
}

TEST(ViewerCount, AViewerLeavesTheCountAfterTheWindow) {
  ViewerCount v;
  v.seen("a", "", "10.0.0.1", "p1", 0);
  v.seen("a", "", "10.0.0.2", "p2", 5000);
  EXPECT_EQ(v.counts(kViewerWindow.count())["a"], 2);
  EXPECT_EQ(v.counts(kViewerWindow.count() + 1)["a"], 1);
  v.seen("a", "", "10.0.0.2", "p2", 12000);  // still watching
  EXPECT_EQ(v.counts(20000)["a"], 1);
  EXPECT_TRUE(v.counts(30000).empty());
}

TEST(ViewerCount, RepeatedCallsWithinASecondStillRefreshTheViewer) {
  // The same thread sees the same viewer many times a second: only the first call of each second
  // takes the lock, and that is enough to keep the viewer within the window.
  ViewerCount v;
  for (std::int64_t t = 0; t <= 30000; t += 100) v.seen("a", "", "10.0.0.1", "p", t);
  EXPECT_EQ(v.counts(30000 + kViewerWindow.count() - 1000)["a"], 1);
}

TEST(ViewerCount, TheTableIsBounded) {
  ViewerCount v;
  for (std::size_t i = 0; i < kMaxViewerKeys + 10; ++i) v.seen("a", std::to_string(i), "", "", 1000);
  EXPECT_EQ(v.counts(1000)["a"], static_cast<std::int64_t>(kMaxViewerKeys));
  EXPECT_EQ(v.overflow(), 10u);
}

}  // namespace
}  // namespace sf::edge
