#include "playlist.h"

#include <gtest/gtest.h>

namespace sf::loadgen {
namespace {

Bytes text(std::string s) {
  return Bytes::adopt(std::move(s));
}

// SPECS §1.5, with the elided segments left out and MEDIA-SEQUENCE moved to match.
const char* kLive = R"(#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,HOLD-BACK=6
#EXT-X-MEDIA-SEQUENCE:1003
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:06.000Z
#EXTINF:2.000,
s1003.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:08.000Z
#EXT-X-PART:DURATION=0.500,URI="s1004.p0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="s1004.p1.m4s"
#EXT-X-PART:DURATION=0.500,URI="s1004.p2.m4s"
#EXT-X-PART:DURATION=0.500,URI="s1004.p3.m4s"
#EXTINF:2.000,
s1004.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:10.000Z
#EXT-X-PART:DURATION=0.500,URI="s1005.p0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.500,URI="s1005.p1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s1005.p2.m4s"
#EXT-X-RENDITION-REPORT:URI="../v1080/index.m3u8",LAST-MSN=1005,LAST-PART=1
)";

constexpr double kAt8 = 1740859208.0;  // 2025-03-01T20:00:08Z

TEST(ParseMediaPlaylist, ReadsHeaderSegmentsAndParts) {
  auto p = parse_media_playlist(text(kLive));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->target_duration, 2);
  EXPECT_EQ(p->part_target, 0.5);
  EXPECT_EQ(p->part_hold_back, 1.5);
  EXPECT_EQ(p->hold_back, 6);
  EXPECT_TRUE(p->can_block_reload);
  EXPECT_FALSE(p->endlist);
  EXPECT_EQ(p->media_sequence, 1003u);
  ASSERT_EQ(p->segments.size(), 2u);
  EXPECT_EQ(p->segments[1].msn, 1004u);
  EXPECT_EQ(p->segments[1].uri, "s1004.m4s");
  EXPECT_EQ(p->segments[1].part_count, 4u);
  EXPECT_EQ(p->segments[0].part_count, 0u);
  EXPECT_EQ(p->next_msn, 1005u);
  ASSERT_EQ(p->parts.size(), 6u);
  EXPECT_EQ(p->parts[5].msn, 1005u);
  EXPECT_EQ(p->parts[5].index, 1u);
  EXPECT_EQ(p->parts[5].uri, "s1005.p1.m4s");
  EXPECT_EQ(p->parts[5].map_uri, "init.mp4");
  EXPECT_TRUE(p->parts[4].independent);
  EXPECT_FALSE(p->parts[5].independent);
  EXPECT_EQ(p->preload_hint, "s1005.p2.m4s");
}

TEST(ParseMediaPlaylist, PartTimesComeFromTheParentsProgramDateTime) {
  auto p = parse_media_playlist(text(kLive));
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(p->segments[1].pdt, kAt8);
  EXPECT_DOUBLE_EQ(p->parts[0].pdt, kAt8);
  EXPECT_DOUBLE_EQ(p->parts[3].pdt, kAt8 + 1.5);
  EXPECT_DOUBLE_EQ(p->parts[5].pdt, kAt8 + 2.5);
}

TEST(ParseMediaPlaylist, UntaggedSegmentFollowsThePreviousOne) {
  auto p =
      parse_media_playlist(text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:08Z\n"
                                "#EXTINF:2,\na.m4s\n#EXTINF:1.5,\nb.m4s\n#EXT-X-PART:DURATION=0.5,URI=\"c.p0\"\n"));
  ASSERT_TRUE(p);
  EXPECT_DOUBLE_EQ(p->segments[1].pdt, kAt8 + 2);
  EXPECT_DOUBLE_EQ(p->parts[0].pdt, kAt8 + 3.5);
  EXPECT_EQ(p->parts[0].msn, 2u);
}

TEST(ParseMediaPlaylist, DeltaUpdateCountsSkippedSegments) {
  auto p =
      parse_media_playlist(text("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n"
                                "#EXTINF:2,\ns13.m4s\n"));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->segments[0].msn, 13u);
}

TEST(ParseMediaPlaylist, RefusesWhatIsNotAPlaylist) {
  EXPECT_FALSE(parse_media_playlist(text("<html>")));
  EXPECT_FALSE(parse_media_playlist(text("#EXTM3U\ns1.m4s\n")));                 // URI without EXTINF
  EXPECT_FALSE(parse_media_playlist(text("#EXTM3U\n#EXT-X-PART:URI=\"a\"\n")));  // no DURATION
  EXPECT_FALSE(parse_media_playlist(text("#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n")));
}

TEST(ParseMediaPlaylist, ToleratesCrLfAndEndList) {
  auto p =
      parse_media_playlist(text("#EXTM3U\r\n#EXT-X-TARGETDURATION:6\r\n#EXTINF:6.0,\r\na.ts\r\n#EXT-X-ENDLIST\r\n"));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->endlist);
  EXPECT_EQ(p->segments[0].uri, "a.ts");
}

TEST(ParseMultivariant, PicksTheFirstVideoVariantAndItsDefaultAudio) {
  auto m = parse_multivariant(text(R"(#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="Other",URI="audio2/index.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="English",DEFAULT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"
audio-only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2400000,CODECS="avc1.64001F,mp4a.40.2",RESOLUTION=960x540,AUDIO="a"
v540/index.m3u8
)"));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->variants.size(), 2u);
  const Variant* v = first_video_variant(*m);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->uri, "v540/index.m3u8");
  EXPECT_EQ(v->bandwidth, 2400000u);
  const MediaRendition* a = audio_rendition(*m, *v);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->uri, "audio/index.m3u8");
  EXPECT_EQ(audio_rendition(*m, m->variants[0]), nullptr);
}

TEST(LlStartPart, StartsAtTheNewestIndependentPartAtLeastPartHoldBackFromTheEdge) {
  auto p = parse_media_playlist(text(kLive));
  ASSERT_TRUE(p);
  // The edge is the end of s1005.p1 (3.0 s of parts listed); 1.5 s back is s1004.p3, which is not
  // independent: the player starts at s1004.p0, 3.0 s behind.
  auto i = ll_start_part(*p);
  ASSERT_TRUE(i);
  EXPECT_EQ(p->parts[*i].uri, "s1004.p0.m4s");
  EXPECT_DOUBLE_EQ(p->media_after(*i), 3.0);
}

TEST(LlStartPart, TakesTheHoldBackPartWhenItIsIndependent) {
  std::string pl =
      "#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=1.0\n"
      "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:08Z\n";
  for (int i = 0; i < 6; ++i) pl += "#EXT-X-PART:DURATION=0.5,INDEPENDENT=YES,URI=\"p" + std::to_string(i) + "\"\n";
  auto p = parse_media_playlist(text(pl));
  ASSERT_TRUE(p);
  EXPECT_EQ(ll_start_part(*p), 4u);  // p4 + p5 = 1.0 s
}

TEST(LlStartPart, FallsBackToTheOldestIndependentPartWhenTheListIsShort) {
  auto p = parse_media_playlist(
      text("#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
           "#EXT-X-PART:DURATION=0.5,URI=\"a\"\n#EXT-X-PART:DURATION=0.5,URI=\"b\",INDEPENDENT=YES\n"));
  ASSERT_TRUE(p);
  EXPECT_EQ(ll_start_part(*p), 1u);
  auto none = parse_media_playlist(text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n"));
  ASSERT_TRUE(none);
  EXPECT_FALSE(ll_start_part(*none));
}

TEST(PartAt, JoinsASecondRenditionAtThePlaybackPosition) {
  auto p = parse_media_playlist(text(kLive));
  ASSERT_TRUE(p);
  EXPECT_EQ(part_at(*p, kAt8 + 2.0), 4u);  // s1005.p0 starts exactly there
  EXPECT_EQ(part_at(*p, kAt8 + 1.7), 0u);  // newest independent at or before: s1004.p0
  EXPECT_EQ(part_at(*p, kAt8 - 30), 0u);   // before everything: the oldest
}

TEST(PartsAfter, FindsWhatIsNewSinceTheLastDownloadedPart) {
  auto p = parse_media_playlist(text(kLive));
  ASSERT_TRUE(p);
  EXPECT_EQ(parts_after(*p, 1004, 3), 4u);
  EXPECT_EQ(parts_after(*p, 1005, 0), 5u);
  EXPECT_EQ(parts_after(*p, 1005, 1), 6u);  // nothing new
  EXPECT_EQ(parts_after(*p, 900, 0), 0u);   // far behind: everything listed
}

TEST(Follows, KnowsWhenPartsWereMissed) {
  auto p = parse_media_playlist(text(kLive));
  ASSERT_TRUE(p);
  EXPECT_TRUE(follows(*p, 4, 1004, 3));   // last part of a complete segment -> next segment's p0
  EXPECT_FALSE(follows(*p, 4, 1004, 2));  // s1004.p3 was skipped
  EXPECT_TRUE(follows(*p, 5, 1005, 0));
  EXPECT_FALSE(follows(*p, 5, 1004, 3));
  EXPECT_TRUE(follows(*p, 0, 1003, 3));  // s1003's parts left the list: nothing contradicts it
}

TEST(BlockingQuery, AsksForThePartAfterTheLastListedOne) {
  // SPECS §1.5: a client caught up at s1005.p1 asks for _HLS_msn=1005&_HLS_part=2.
  EXPECT_EQ(blocking_query(1005, 1), "_HLS_msn=1005&_HLS_part=2");
  // After the last part of a complete segment the index runs past it; the server rolls it over.
  EXPECT_EQ(blocking_query(1004, 3), "_HLS_msn=1004&_HLS_part=4");
}

TEST(PollStart, StartsThreeSegmentsFromTheEnd) {
  auto p =
      parse_media_playlist(text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
                                "#EXTINF:2,\na\n#EXTINF:2,\nb\n#EXTINF:2,\nc\n#EXTINF:2,\nd\n#EXTINF:2,\ne\n"));
  ASSERT_TRUE(p);
  EXPECT_EQ(poll_start_segment(*p, 3), 2u);
  EXPECT_EQ(segments_after(*p, 9), 3u);
  EXPECT_EQ(segments_after(*p, 11), 5u);
  EXPECT_EQ(segments_after(*p, 3), 0u);
}

TEST(ProgramDateTime, ParsesUtcAndOffsets) {
  EXPECT_DOUBLE_EQ(*parse_program_date_time("2025-03-01T20:00:08.000Z"), kAt8);
  EXPECT_DOUBLE_EQ(*parse_program_date_time("2025-03-01T21:00:08.250+01:00"), kAt8 + 0.25);
  EXPECT_DOUBLE_EQ(*parse_program_date_time("2025-03-01T19:30:08-0030"), kAt8);
  EXPECT_DOUBLE_EQ(*parse_program_date_time("1970-01-01T00:00:00Z"), 0.0);
  EXPECT_FALSE(parse_program_date_time("2025-13-01T20:00:08Z"));
  EXPECT_FALSE(parse_program_date_time("2025-03-01 junk"));
}

TEST(Urls, ParsesHttpUrls) {
  auto u = parse_http_url("http://127.0.0.1:8080/live/cam/master.m3u8?token=x");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->endpoint.host, "127.0.0.1");
  EXPECT_EQ(u->endpoint.port, 8080);
  EXPECT_EQ(u->target, "/live/cam/master.m3u8?token=x");
  EXPECT_EQ(parse_http_url("http://[::1]/x")->endpoint.port, 80);
  EXPECT_EQ(parse_http_url("http://[::1]/x")->endpoint.host, "::1");
  EXPECT_FALSE(parse_http_url("https://example.com/"));
  EXPECT_FALSE(parse_http_url("http://host:99999/"));
}

TEST(Urls, ResolvesPlaylistReferences) {
  net::Endpoint ep{"127.0.0.1", 8080};
  EXPECT_EQ(*resolve_uri("/live/cam/master.m3u8", "video/index.m3u8", ep), "/live/cam/video/index.m3u8");
  EXPECT_EQ(*resolve_uri("/live/cam/video/index.m3u8?_HLS_msn=3", "s3.p0.m4s", ep), "/live/cam/video/s3.p0.m4s");
  EXPECT_EQ(*resolve_uri("/live/cam/video/index.m3u8", "../audio/index.m3u8", ep), "/live/cam/audio/index.m3u8");
  EXPECT_EQ(*resolve_uri("/live/cam/master.m3u8", "/other/x.m3u8?a=b", ep), "/other/x.m3u8?a=b");
  EXPECT_EQ(*resolve_uri("/a/b.m3u8", "http://127.0.0.1:8080/c/./d.m4s", ep), "/c/d.m4s");
  EXPECT_EQ(resolve_uri("/a/b.m3u8", "http://elsewhere:8080/c.m4s", ep).error(), errc::unsupported);
}

}  // namespace
}  // namespace sf::loadgen
