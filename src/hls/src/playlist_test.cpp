#include "sf/hls/playlist.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace sf::hls {
namespace {

using namespace std::chrono_literals;

std::int64_t ms_at(std::chrono::sys_days day, std::chrono::seconds time_of_day) {
  return std::chrono::duration_cast<std::chrono::milliseconds>((day + time_of_day).time_since_epoch()).count();
}

const std::int64_t kStartMs = ms_at(std::chrono::sys_days{2025y / std::chrono::March / 1}, 20h);

// Segment `msn` of 2 s, 4 parts of 0.5 s ("s<msn>.p<i>.m4s"), starting (msn - first) * 2 s after kStartMs.
Segment segment(std::uint64_t msn, std::uint64_t first, int parts = 4, bool complete = true) {
  Segment s;
  s.msn = msn;
  s.duration = 2.0;
  s.uri = "s" + std::to_string(msn) + ".m4s";
  s.program_date_time_ms = kStartMs + static_cast<std::int64_t>(msn - first) * 2000;
  s.map_uri = "init.mp4";
  s.complete = complete;
  for (int i = 0; i < parts; ++i) {
    s.parts.push_back({0.5, i == 0, "s" + std::to_string(msn) + ".p" + std::to_string(i) + ".m4s"});
  }
  return s;
}

// SPECS §1.5: TD 2 s, PT 0.5 s, segments 1000–1004 complete, 1005 holding two parts.
MediaPlaylist spec_example() {
  MediaPlaylist p;
  p.target_duration = 2;
  p.part_target = 0.5;
  p.media_sequence = 1000;
  for (std::uint64_t msn = 1000; msn <= 1004; ++msn) p.segments.push_back(segment(msn, 1000));
  p.segments.push_back(segment(1005, 1000, 2, false));
  p.preload_hint_uri = "s1005.p2.m4s";
  p.reports = {{"../v1080/index.m3u8", 1005, 1}, {"../audio/index.m3u8", 1005, 1}};
  p.part_hold_back = 1.5;
  p.hold_back = 6;
  return p;
}

RenderOptions spec_options() {
  RenderOptions o;
  o.part_window_seconds = 3 * 2;
  return o;
}

TEST(MediaPlaylist, RendersTheSpecLowLatencyExample) {
  // The spec's example with its elided segments filled in; durations carry 5 decimals.
  EXPECT_EQ(render_media_playlist(spec_example(), spec_options()),
            "#EXTM3U\n"
            "#EXT-X-VERSION:6\n"
            "#EXT-X-TARGETDURATION:2\n"
            "#EXT-X-PART-INF:PART-TARGET=0.5\n"
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,HOLD-BACK=6\n"
            "#EXT-X-MEDIA-SEQUENCE:1000\n"
            "#EXT-X-MAP:URI=\"init.mp4\"\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:00.000Z\n"
            "#EXTINF:2.00000,\n"
            "s1000.m4s\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:02.000Z\n"
            "#EXTINF:2.00000,\n"
            "s1001.m4s\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:04.000Z\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1002.p0.m4s\",INDEPENDENT=YES\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1002.p1.m4s\"\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1002.p2.m4s\"\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1002.p3.m4s\"\n"
            "#EXTINF:2.00000,\n"
            "s1002.m4s\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:06.000Z\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1003.p0.m4s\",INDEPENDENT=YES\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1003.p1.m4s\"\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1003.p2.m4s\"\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1003.p3.m4s\"\n"
            "#EXTINF:2.00000,\n"
            "s1003.m4s\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:08.000Z\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1004.p0.m4s\",INDEPENDENT=YES\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1004.p1.m4s\"\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1004.p2.m4s\"\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1004.p3.m4s\"\n"
            "#EXTINF:2.00000,\n"
            "s1004.m4s\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:10.000Z\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1005.p0.m4s\",INDEPENDENT=YES\n"
            "#EXT-X-PART:DURATION=0.50000,URI=\"s1005.p1.m4s\"\n"
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s1005.p2.m4s\"\n"
            "#EXT-X-RENDITION-REPORT:URI=\"../v1080/index.m3u8\",LAST-MSN=1005,LAST-PART=1\n"
            "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=1005,LAST-PART=1\n");
}

TEST(MediaPlaylist, ProgramDateTimeKeepsMilliseconds) {
  MediaPlaylist p = spec_example();
  p.segments.resize(1);
  p.segments[0].program_date_time_ms += 1234;
  EXPECT_NE(render_media_playlist(p, spec_options()).find("#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:01.234Z\n"),
            std::string::npos);
}

// Eight complete 2 s segments (16 s) without parts, CAN-SKIP-UNTIL=12.
MediaPlaylist long_window() {
  MediaPlaylist p;
  p.target_duration = 2;
  p.media_sequence = 10;
  p.hold_back = 6;
  p.can_skip_until = 12;
  for (std::uint64_t msn = 10; msn < 18; ++msn) p.segments.push_back(segment(msn, 10, 0));
  return p;
}

TEST(MediaPlaylist, DeltaUpdateSkipsSegmentsBeforeTheSkipBoundary) {
  RenderOptions o;
  o.skip = true;
  // 16 s listed: segments ending at 2 s and 4 s lie ≥ 12 s before the end; the one ending at 6 s does not.
  const std::string text = render_media_playlist(long_window(), o);
  EXPECT_EQ(text.substr(0, text.find("#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:06.000Z")),
            "#EXTM3U\n"
            "#EXT-X-VERSION:9\n"
            "#EXT-X-TARGETDURATION:2\n"
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12,HOLD-BACK=6\n"
            "#EXT-X-MEDIA-SEQUENCE:10\n"
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"
            "#EXT-X-MAP:URI=\"init.mp4\"\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:04.000Z\n"
            "#EXTINF:2.00000,\n"
            "s12.m4s\n");
  EXPECT_EQ(text.find("s11.m4s"), std::string::npos);
}

TEST(MediaPlaylist, SkipRequestGivesFullPlaylistWithoutCanSkipUntil) {
  MediaPlaylist p = long_window();
  p.can_skip_until = 0;
  RenderOptions o;
  o.skip = true;
  const std::string text = render_media_playlist(p, o);
  EXPECT_NE(text.find("#EXT-X-VERSION:6\n"), std::string::npos);
  EXPECT_EQ(text.find("EXT-X-SKIP"), std::string::npos);
  EXPECT_NE(text.find("s10.m4s"), std::string::npos);
}

TEST(MediaPlaylist, SkipRequestGivesFullPlaylistOnceEnded) {
  MediaPlaylist p = long_window();
  p.ended = true;
  RenderOptions o;
  o.skip = true;
  const std::string text = render_media_playlist(p, o);
  EXPECT_EQ(text.find("EXT-X-SKIP:"), std::string::npos);
  EXPECT_NE(text.find("s10.m4s"), std::string::npos);
}

TEST(MediaPlaylist, DiscontinuityWritesTagSequenceAndNewMap) {
  MediaPlaylist p;
  p.target_duration = 2;
  p.media_sequence = 7;
  p.discontinuity_sequence = 3;
  p.segments = {segment(7, 7, 0), segment(8, 7, 0), segment(9, 7, 0)};
  p.segments[1].discontinuity = true;
  p.segments[1].map_uri = "init-v2.mp4";
  p.segments[2].map_uri = "init-v2.mp4";
  EXPECT_EQ(render_media_playlist(p, {}),
            "#EXTM3U\n"
            "#EXT-X-VERSION:6\n"
            "#EXT-X-TARGETDURATION:2\n"
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n"
            "#EXT-X-MEDIA-SEQUENCE:7\n"
            "#EXT-X-DISCONTINUITY-SEQUENCE:3\n"
            "#EXT-X-MAP:URI=\"init.mp4\"\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:00.000Z\n"
            "#EXTINF:2.00000,\n"
            "s7.m4s\n"
            "#EXT-X-DISCONTINUITY\n"
            "#EXT-X-MAP:URI=\"init-v2.mp4\"\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:02.000Z\n"
            "#EXTINF:2.00000,\n"
            "s8.m4s\n"
            "#EXT-X-PROGRAM-DATE-TIME:2025-03-01T20:00:04.000Z\n"
            "#EXTINF:2.00000,\n"
            "s9.m4s\n");
}

TEST(MediaPlaylist, QueryIsAppendedToEveryUri) {
  MediaPlaylist p = spec_example();
  p.reports[0].uri = "../v1080/index.m3u8?lang=en";
  RenderOptions o = spec_options();
  o.query = "token=abc";
  const std::string text = render_media_playlist(p, o);
  EXPECT_NE(text.find("#EXT-X-MAP:URI=\"init.mp4?token=abc\"\n"), std::string::npos);
  EXPECT_NE(text.find("\ns1004.m4s?token=abc\n"), std::string::npos);
  EXPECT_NE(text.find("URI=\"s1005.p1.m4s?token=abc\"\n"), std::string::npos);
  EXPECT_NE(text.find("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s1005.p2.m4s?token=abc\"\n"), std::string::npos);
  EXPECT_NE(text.find("URI=\"../v1080/index.m3u8?lang=en&token=abc\","), std::string::npos);
  EXPECT_NE(text.find("URI=\"../audio/index.m3u8?token=abc\","), std::string::npos);
  // Every URI: 1 map + 5 segments + 14 parts (1002–1005) + 1 hint + 2 reports.
  std::size_t count = 0;
  for (auto at = text.find("token=abc"); at != std::string::npos; at = text.find("token=abc", at + 1)) ++count;
  EXPECT_EQ(count, 23u);
}

TEST(MediaPlaylist, EndedPlaylistHasEndlistAndNoPreloadHint) {
  MediaPlaylist p = spec_example();
  p.segments.back() = segment(1005, 1000);
  p.reports.clear();
  p.ended = true;
  const std::string text = render_media_playlist(p, spec_options());
  EXPECT_EQ(text.find("PRELOAD-HINT"), std::string::npos);
  EXPECT_TRUE(text.ends_with("s1005.m4s\n#EXT-X-ENDLIST\n"));
}

TEST(MediaPlaylist, PartsOutsideTheWindowAreDropped) {
  RenderOptions o;
  o.part_window_seconds = 0;
  const std::string text = render_media_playlist(spec_example(), o);
  // Only the incomplete segment still lists its parts.
  EXPECT_EQ(text.find("s1004.p0.m4s"), std::string::npos);
  EXPECT_NE(text.find("s1005.p0.m4s"), std::string::npos);
}

TEST(MultivariantPlaylist, RendersTheSpecExample) {
  const std::vector<Variant> variants = {
      {2400000, 2150000, "avc1.64001F,mp4a.40.2", 960, 540, 30, "v540/index.m3u8", "a"}};
  const std::vector<AudioRendition> audio = {{"a", "English", "en", "audio/index.m3u8", true}};
  EXPECT_EQ(render_multivariant(variants, audio, ""),
            "#EXTM3U\n"
            "#EXT-X-VERSION:6\n"
            "#EXT-X-INDEPENDENT-SEGMENTS\n"
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,"
            "URI=\"audio/index.m3u8\"\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=2400000,AVERAGE-BANDWIDTH=2150000,CODECS=\"avc1.64001F,mp4a.40.2\","
            "RESOLUTION=960x540,FRAME-RATE=30.000,AUDIO=\"a\"\n"
            "v540/index.m3u8\n");
}

TEST(MultivariantPlaylist, QueryReachesVariantAndRenditionUris) {
  const std::vector<Variant> variants = {{800000, 0, "avc1.4d401f", 640, 360, 29.97, "v360/index.m3u8", ""}};
  const std::vector<AudioRendition> audio = {{"a", "English", "", "audio/index.m3u8", false}};
  EXPECT_EQ(render_multivariant(variants, audio, "token=t1"),
            "#EXTM3U\n"
            "#EXT-X-VERSION:6\n"
            "#EXT-X-INDEPENDENT-SEGMENTS\n"
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"English\",DEFAULT=NO,AUTOSELECT=YES,"
            "URI=\"audio/index.m3u8?token=t1\"\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=800000,CODECS=\"avc1.4d401f\",RESOLUTION=640x360,FRAME-RATE=29.970\n"
            "v360/index.m3u8?token=t1\n");
}

}  // namespace
}  // namespace sf::hls
