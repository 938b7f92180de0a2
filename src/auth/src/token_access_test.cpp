#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "sf/auth/token_access.h"

namespace sf::auth {
namespace {

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const TokenKey kKey{"k1", "first-secret-0123456789"};

TEST(TokenChecker, AllowsValidTokenAndRefusesOthersWith403) {
  TokenChecker checker({kKey});
  auto good = issue_token(kKey, "match1", now_s() + 60);
  EXPECT_EQ(checker.check(good, "match1", "127.0.0.1").status, 0);
  EXPECT_EQ(checker.check(good, "match1", "127.0.0.1").status, 0);  // cached verdict
  EXPECT_EQ(checker.check(good, "match2", "127.0.0.1").status, 403);
  EXPECT_EQ(checker.check("", "match1", "127.0.0.1").status, 403);
  EXPECT_EQ(checker.check("", "match1", "127.0.0.1").message, "viewer token required");
  EXPECT_EQ(checker.check(issue_token(kKey, "match1", now_s() - 1), "match1", "").message, "token expired");
}

TEST(TokenChecker, CachedVerdictEndsAtExpiry) {
  TokenChecker checker({kKey});
  auto token = issue_token(kKey, "match1", now_s() + 1);
  EXPECT_EQ(checker.check(token, "match1", "").status, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_EQ(checker.check(token, "match1", "").status, 403);
}

TEST(TokenChecker, CacheIsPerChecker) {
  auto token = issue_token(kKey, "match1", now_s() + 60);
  TokenChecker with({kKey});
  EXPECT_EQ(with.check(token, "match1", "").status, 0);
  TokenChecker without({TokenKey{"k2", "other-secret-0123456789"}});
  EXPECT_EQ(without.check(token, "match1", "").status, 403);
}

TEST(TokenChecker, UpstreamTokenVerifiesForItsStream) {
  TokenChecker checker({kKey});
  auto token = checker.upstream_token("match1");
  EXPECT_TRUE(verify_token({kKey}, token, "match1", now_s() + 59, ""));
  EXPECT_FALSE(verify_token({kKey}, token, "match2", now_s(), ""));
  EXPECT_EQ(TokenChecker({}).upstream_token("match1"), "");
}

TEST(ProtectedStreams, ReplaceIsSeenByReaders) {
  ProtectedStreams p;
  EXPECT_FALSE(p.contains("a"));
  p.replace({"a", "b"});
  EXPECT_TRUE(p.contains("a"));
  EXPECT_FALSE(p.contains("c"));
  p.replace({});
  EXPECT_FALSE(p.contains("a"));
}

TEST(ProtectedStreams, InstancesOnOneThreadDoNotShareSnapshots) {
  ProtectedStreams a, b;
  a.replace({"x"});
  EXPECT_TRUE(a.contains("x"));
  EXPECT_FALSE(b.contains("x"));
  b.replace({"y"});
  EXPECT_TRUE(b.contains("y"));
  EXPECT_FALSE(a.contains("y"));
  EXPECT_TRUE(a.contains("x"));
}

TEST(ProtectedStreams, OtherThreadsSeeReplacements) {
  ProtectedStreams p;
  std::atomic<bool> stop{false}, seen{false};
  std::thread reader([&] {
    while (!stop) {
      if (p.contains("late")) seen = true;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  p.replace({"late"});
  for (int i = 0; i < 200 && !seen; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  reader.join();
  EXPECT_TRUE(seen);
}

TEST(LiveStreamOf, FindsTheStreamSegment) {
  EXPECT_EQ(live_stream_of("/live/match1/video/s1.m4s"), "match1");
  EXPECT_EQ(live_stream_of("/live/match1/master.m3u8"), "match1");
  EXPECT_EQ(live_stream_of("/player/x"), "");
}

TEST(AddTokenToHls, EveryUriCarriesTheToken) {
  std::string_view in =
      "#EXTM3U\n"
      "#EXT-X-MAP:URI=\"init0.mp4\"\n"
      "#EXT-X-PART:DURATION=0.5,URI=\"s1.p0.m4s\",INDEPENDENT=YES\n"
      "#EXTINF:2.0,\n"
      "s1.m4s\n"
      "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s2.p0.m4s\"\n"
      "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=2\n"
      "# a comment with URI=\"x\"\n"
      "\n"
      "video/index.m3u8?a=1\r\n";
  auto out = add_token_to_hls(in, "1.k1.5..sig");
  EXPECT_EQ(out,
            "#EXTM3U\n"
            "#EXT-X-MAP:URI=\"init0.mp4?token=1.k1.5..sig\"\n"
            "#EXT-X-PART:DURATION=0.5,URI=\"s1.p0.m4s?token=1.k1.5..sig\",INDEPENDENT=YES\n"
            "#EXTINF:2.0,\n"
            "s1.m4s?token=1.k1.5..sig\n"
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s2.p0.m4s?token=1.k1.5..sig\"\n"
            "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8?token=1.k1.5..sig\",LAST-MSN=2\n"
            "# a comment with URI=\"x\"\n"
            "\n"
            "video/index.m3u8?a=1&token=1.k1.5..sig\r\n");
}

TEST(AddTokenToHls, MultivariantMediaTags) {
  auto out = add_token_to_hls(
      "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",URI=\"audio/index.m3u8\"\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1\"\nvideo/index.m3u8",
      "T");
  EXPECT_EQ(out,
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",URI=\"audio/index.m3u8?token=T\"\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1\"\nvideo/index.m3u8?token=T");
}

TEST(AddTokenToHls, UnsafeTokenLeavesBodyAlone) {
  EXPECT_EQ(add_token_to_hls("s1.m4s\n", "a\"b"), "s1.m4s\n");
  EXPECT_EQ(add_token_to_hls("s1.m4s\n", ""), "s1.m4s\n");
}

TEST(AddTokenToDash, TemplatesCarryTheToken) {
  std::string_view in =
      "<MPD mediaPresentationDuration=\"PT0S\">\n"
      "<SegmentTemplate timescale=\"90000\" initialization=\"$RepresentationID$/init0.mp4\" "
      "media=\"$RepresentationID$/s$Number$.m4s\" startNumber=\"3\"/>\n"
      "<SegmentURL media=\"a.m4s?x=1\"/></MPD>";
  EXPECT_EQ(add_token_to_dash(in, "T"),
            "<MPD mediaPresentationDuration=\"PT0S\">\n"
            "<SegmentTemplate timescale=\"90000\" initialization=\"$RepresentationID$/init0.mp4?token=T\" "
            "media=\"$RepresentationID$/s$Number$.m4s?token=T\" startNumber=\"3\"/>\n"
            "<SegmentURL media=\"a.m4s?x=1&amp;token=T\"/></MPD>");
}

}  // namespace
}  // namespace sf::auth
