#include "packager.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace sf::origin {
namespace {

media::TrackConfig video_track(std::uint8_t tag = 0) {
  media::TrackConfig t;
  t.track_id = 1;
  t.type = media::MediaType::video;
  t.codec = media::Codec::h264;
  t.timescale = media::kVideoTimescale;
  // An avcC as x264 writes it (High 3.1); the packager copies it into the init segment.
  const unsigned char avcc[] = {0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04, 0x67,
                                0x64, 0x00, tag,  0x01, 0x00, 0x02, 0x68, 0xee};
  t.record = Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(avcc), sizeof(avcc)));
  t.video = media::VideoConfig{media::Codec::h264, 100, 0, 31, 1280, 720, 4, "avc1.64001f"};
  return t;
}

media::TrackConfig audio_track() {
  media::TrackConfig t;
  t.track_id = 2;
  t.type = media::MediaType::audio;
  t.codec = media::Codec::aac;
  t.timescale = 48000;
  const unsigned char asc[] = {0x11, 0x90};
  t.record = Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(asc), sizeof(asc)));
  t.audio = media::AudioConfig{media::Codec::aac, 2, 48000, 2, 1024, "mp4a.40.2"};
  return t;
}

media::MediaFrame frame(const media::TrackConfig& t, std::int64_t dts, bool key) {
  static const Bytes payload = Bytes::copy_of(as_bytes("0123456789"));
  return {t.track_id, t.type, t.codec, dts, dts, key, 1, payload};
}

struct Feed {
  Config config;
  Packager packager{"s", config};
  std::shared_ptr<const StreamView> last;
  std::function<void(const StreamView&)> on_view;  // called with every view published
  media::TrackConfig v = video_track(), a = audio_track();
  std::uint32_t epoch = 0;              // stamped on the frames run() sends
  std::int64_t next_v = 0, next_a = 0;  // the times after the last frames run() sent

  Feed() {
    packager.on_track(v);
    packager.on_track(a);
  }
  // Interleaves 30 fps video (keyframe every `gop` frames) and 48 kHz AAC by decode time.
  void run(double seconds, int gop = 30, std::int64_t video_offset = 0, std::int64_t audio_offset = 0) {
    int vf = 0, af = 0;
    for (;;) {
      double vt = vf / 30.0, at = af * 1024 / 48000.0;
      if (vt > seconds && at > seconds) break;
      if (vt <= at) {
        auto fv = frame(v, video_offset + vf * 3000, vf % gop == 0);
        fv.epoch = epoch;
        if (auto view = packager.on_frame(fv)) seen(view);
        next_v = fv.dts + 3000;
        ++vf;
      } else {
        auto fa = frame(a, audio_offset + af * 1024, true);
        fa.epoch = epoch;
        if (auto view = packager.on_frame(fa)) seen(view);
        next_a = fa.dts + 1024;
        ++af;
      }
    }
  }
  void seen(std::shared_ptr<const StreamView> view) {
    last = std::move(view);
    if (on_view) on_view(*last);
  }
  const RenditionView& rendition(const char* name) const { return *last->rendition(name); }
  void on_stop() { seen(packager.on_stop()); }
};

TEST(Packager, PartsNeverExceedTheAdvertisedTargetAndSegmentsStartOnKeyframes) {
  Feed f;
  f.run(9);
  // PART-TARGET carries one AAC frame (1024 / 48000 s) on top of the configured 0.5 s.
  EXPECT_DOUBLE_EQ(f.last->part_target, 0.522);
  EXPECT_NE(as_chars(f.rendition("video").playlist.view()).find("PART-TARGET=0.522"), std::string::npos);
  for (const char* name : {"video", "audio"}) {
    for (auto& s : f.rendition(name).segments) {
      for (auto& p : s->parts) EXPECT_LE(p->duration, f.last->part_target + 1e-9) << name << " msn " << s->msn;
      if (s->complete) {
        EXPECT_LE(s->duration, 2.0 + 0.05) << name;
      }
    }
  }
  for (auto& s : f.rendition("video").segments)
    for (auto& p : s->parts) EXPECT_LE(p->duration, 0.5 + 1e-9);
  for (auto& s : f.rendition("video").segments) {
    EXPECT_TRUE(s->parts.front()->independent);
    if (s->complete) {
      EXPECT_NEAR(s->duration, 2.0, 1e-9);
      EXPECT_EQ(s->parts.size(), 4u);
    }
  }
}

TEST(Packager, AudioSegmentsShareTheVideoNumbersAndStartTimes) {
  Feed f;
  f.run(9);
  auto& v = f.rendition("video");
  auto& a = f.rendition("audio");
  for (auto& vs : v.segments) {
    const Segment* as = a.find(vs->msn);
    ASSERT_NE(as, nullptr) << vs->msn;
    double vstart = vs->start_dts / 90000.0, astart = as->start_dts / 48000.0;
    EXPECT_NEAR(astart, vstart, 1024 / 48000.0) << vs->msn;
  }
}

TEST(Packager, AudioPartsFollowVideoPartsWithoutSlivers) {
  Feed f;
  f.run(9);
  auto& v = f.rendition("video");
  auto& a = f.rendition("audio");
  for (auto& vs : v.segments) {
    if (!vs->complete) continue;
    const Segment* as = a.find(vs->msn);
    ASSERT_NE(as, nullptr);
    EXPECT_EQ(as->parts.size(), vs->parts.size()) << "msn " << vs->msn;
    for (auto& p : as->parts) EXPECT_GT(p->duration, 0.45) << "msn " << vs->msn;
  }
}

TEST(Packager, LongGopRaisesTargetDurationInsteadOfBreakingIt) {
  Feed f;
  f.run(12, /*gop=*/90);  // 3 s keyframe interval against a 2 s target
  EXPECT_NE(as_chars(f.rendition("video").playlist.view()).find("#EXT-X-TARGETDURATION:3"), std::string::npos);
}

TEST(Packager, RestartIsOneDiscontinuityInEveryRendition) {
  Feed f;
  f.run(5);
  f.packager.restart();
  f.run(5);  // timestamps start again from 0, as a reconnecting encoder does
  for (const char* name : {"video", "audio"}) {
    int discontinuities = 0;
    for (auto& s : f.rendition(name).segments) discontinuities += s->discontinuity;
    EXPECT_EQ(discontinuities, 1) << name;
    EXPECT_NE(as_chars(f.rendition(name).playlist.view()).find("#EXT-X-DISCONTINUITY\n"), std::string::npos) << name;
  }
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The MPD's Periods, each as the text from its start tag to its end tag.
std::vector<std::string> mpd_periods(std::string_view mpd) {
  std::vector<std::string> out;
  for (auto at = mpd.find("<Period "); at != std::string_view::npos; at = mpd.find("<Period ", at + 1))
    out.emplace_back(mpd.substr(at, mpd.find("</Period>", at) - at));
  return out;
}

TEST(Packager, EveryMpdPeriodAcrossARestartHasBothVideoAndAudio) {
  Feed f;
  std::size_t views = 0, with_two = 0, incomplete = 0, extended = 0;
  std::string example;
  f.run(5);
  f.packager.restart();
  f.on_view = [&](const StreamView& view) {
    ++views;
    auto periods = mpd_periods(as_chars(view.mpd.view()));
    with_two += periods.size() == 2;
    for (std::size_t i = 0; i < periods.size(); ++i) {
      const std::string& p = periods[i];
      // Only the newest Period's timeline goes on past its last segment.
      if (i + 1 < periods.size() && p.find("r=\"-1\"") != std::string::npos) ++extended;
      if (p.find("contentType=\"video\"") != std::string::npos && p.find("contentType=\"audio\"") != std::string::npos)
        continue;
      ++incomplete;
      example = as_chars(view.mpd.view());
    }
  };
  f.run(20);  // long enough for the first publish's Period to leave the window
  EXPECT_GT(with_two, 0u);
  EXPECT_EQ(mpd_periods(as_chars(f.last->mpd.view())).size(), 1u);
  // 23009-1 5.3.2: a player takes a Period's AdaptationSets as the content of that Period; an old
  // one listed with audio only (its video left the window a moment before its audio), or a new one
  // with video only (its audio not started yet), is played that way.
  EXPECT_EQ(incomplete, 0u) << views << " views; e.g.\n" << example;
  EXPECT_EQ(extended, 0u) << views << " views";
}

TEST(Packager, OldMpdPeriodKeepsItsRepresentationsAfterANewConfiguration) {
  Feed f;
  f.run(5);
  f.packager.restart();
  auto small = video_track(1);
  small.video->width = 640;
  small.video->height = 360;
  small.video->codec_string = "avc1.64001e";
  f.packager.on_track(small);
  f.v = small;
  f.run(5);
  auto periods = mpd_periods(as_chars(f.last->mpd.view()));
  ASSERT_EQ(periods.size(), 2u) << as_chars(f.last->mpd.view());
  // 23009-1 5.4: an MPD update does not change a Period's content; dash.js lost the old Period's
  // video (and stalled at its end) when its Representation took the new size and codec.
  EXPECT_NE(periods[0].find("codecs=\"avc1.64001f\" bandwidth="), std::string::npos) << periods[0];
  EXPECT_NE(periods[0].find("width=\"1280\" height=\"720\""), std::string::npos) << periods[0];
  EXPECT_NE(periods[0].find("init1.mp4"), std::string::npos) << periods[0];
  EXPECT_NE(periods[1].find("codecs=\"avc1.64001e\" bandwidth="), std::string::npos) << periods[1];
  EXPECT_NE(periods[1].find("width=\"640\" height=\"360\""), std::string::npos) << periods[1];
  EXPECT_NE(periods[1].find("init2.mp4"), std::string::npos) << periods[1];
}

TEST(Packager, ProgramDateTimeIsTheEarliestMarkedArrivalBeforeTheFirstPart) {
  Feed f;
  // Ingest saw media time 0 arrive 5 s ago, late (media time 0.1 came 20 ms after it); the
  // packager sees the frames only now (a transcoder's delay): PDT maps media time from the
  // earliest implied start, 4980 ms ago, not from now.
  auto clock = std::make_shared<ArrivalClock>();
  const std::int64_t start = now_ms() - 5000;
  clock->mark(0.0, start + 100);
  clock->mark(0.1, start + 120);
  f.packager.restart(clock);
  for (int i = 0; i < 5; ++i) f.packager.on_frame(frame(f.v, i * 3000, i == 0));
  // Marked after the packager's first frame, before its first part: still counts.
  clock->mark(0.2, start + 180);
  f.run(7);
  // Marked after the first part went out: too late to move anything listed.
  clock->mark(3.0, start);
  f.run(9);
  auto& segments = f.rendition("video").segments;
  ASSERT_GE(segments.size(), 4u);
  for (auto& s : segments) {
    double media = double(s->start_dts) / media::kVideoTimescale;
    EXPECT_NEAR(double(s->pdt_ms), double(start - 20) + media * 1000, 1.0) << s->msn;
  }
  EXPECT_EQ(f.last->availability_start_ms, start - 20);
}

TEST(Packager, ProgramDateTimeNeverGoesBackAcrossAReconnect) {
  Feed f;
  f.run(9);  // 9 s of media at once: PDT runs ahead of the wall clock
  f.on_stop();
  auto before = f.rendition("video").segments;
  auto clock = std::make_shared<ArrivalClock>();
  clock->mark(0, now_ms());  // the new publisher's first frame arrives now, its time again from 0
  f.packager.restart(clock);
  f.run(5);
  auto& after = f.rendition("video").segments;
  std::int64_t end = 0;
  for (auto& s : before)
    if (s->complete) end = std::max<std::int64_t>(end, s->pdt_ms + std::llround(s->duration * 1000));
  const Segment* first_new = nullptr;
  for (auto& s : after)
    if (s->discontinuity) first_new = s.get();
  ASSERT_NE(first_new, nullptr);
  EXPECT_EQ(first_new->pdt_ms, end);  // continues where the old timeline ended
  std::int64_t last = 0;
  for (auto& s : after) {
    EXPECT_GE(s->pdt_ms, last) << s->msn;
    last = s->pdt_ms;
  }
}

// The value of the first `name="..."` attribute in `text`; "" if there is none.
std::string attribute(std::string_view text, std::string_view name) {
  std::string key = " " + std::string(name) + "=\"";
  auto at = text.find(key);
  if (at == std::string_view::npos) return "";
  at += key.size();
  return std::string(text.substr(at, text.find('"', at) - at));
}

double period_start(std::string_view period) {
  auto v = attribute(period, "start");  // PT<seconds>S
  return std::stod(v.substr(2, v.size() - 3));
}

// The publisher stops and reconnects `gap_ms` after the end of the media so far (its first frame
// marked then), and publishes 5 s; returns where the old media ended (program date time, ms).
std::int64_t reconnect_after(Feed& f, std::int64_t gap_ms) {
  f.on_stop();
  std::int64_t end = 0;
  for (auto& s : f.rendition("video").segments)
    end = std::max<std::int64_t>(end, s->pdt_ms + std::llround(s->duration * 1000));
  auto clock = std::make_shared<ArrivalClock>();
  clock->mark(0, end + gap_ms);
  f.packager.restart(clock);
  f.run(5);
  return end;
}

// A publisher reconnects `gap_ms` after the end of its first publish's 5 s of media; returns the
// feed after 5 s of the new publish.
Feed& republish_after(Feed& f, std::int64_t gap_ms, std::int64_t* old_end_ms) {
  f.run(5);
  *old_end_ms = reconnect_after(f, gap_ms);
  return f;
}

TEST(Packager, ShortGapBeforeANewPeriodIsClosedOnTheMpdTimelineWithTrueAvailability) {
  Feed f;
  std::int64_t old_end = 0;
  republish_after(f, 300, &old_end);
  const Segment* first_new = nullptr;
  for (auto& s : f.rendition("video").segments)
    if (s->discontinuity) first_new = s.get();
  ASSERT_NE(first_new, nullptr);
  EXPECT_EQ(first_new->pdt_ms, old_end + 300);  // HLS: the program date time is the arrival, as before
  const std::string mpd(as_chars(f.last->mpd.view()));
  auto periods = mpd_periods(mpd);
  ASSERT_EQ(periods.size(), 2u) << mpd;
  // The new Period starts where the old one's video ends: no gap for dash.js to wait out.
  const double ast = double(f.last->availability_start_ms) / 1000;
  EXPECT_NEAR(period_start(periods[1]), double(old_end) / 1000 - ast, 1e-6) << mpd;
  // Its first segment is at the Period's start on the MPD's timeline...
  const auto pto = attribute(periods[1], "presentationTimeOffset");  // omitted when 0
  EXPECT_EQ(pto.empty() ? "0" : pto, std::to_string(first_new->start_dts)) << periods[1];
  EXPECT_NE(periods[1].find("<S t=\"0\" d=\"180000\"/>"), std::string::npos) << periods[1];
  // ...and requestable when it really is: availabilityTimeOffset is 0.3 s shorter, so AST + Period
  // start + segment end - availabilityTimeOffset is the segment's PDT + 2 s - 1.478 s, as in the
  // old Period and as without the closed gap.
  EXPECT_EQ(attribute(periods[0], "availabilityTimeOffset"), "1.478");
  ASSERT_EQ(attribute(periods[1], "availabilityTimeOffset"), "1.178") << periods[1];
  const double available = ast + period_start(periods[1]) + 2.0 - 1.178;
  EXPECT_NEAR(available, double(first_new->pdt_ms) / 1000 + 2.0 - 1.478, 1e-6);
}

TEST(Packager, GapThatTheSettledAnchorShortensIsClosedToo) {
  Feed f;
  f.run(5);
  f.on_stop();
  std::int64_t end = 0;
  for (auto& s : f.rendition("video").segments)
    end = std::max<std::int64_t>(end, s->pdt_ms + std::llround(s->duration * 1000));
  // The new publish's first frame arrives 2.5 s after the old media's end (a gap kept open when
  // its first segment opens), but a frame before its first part shows it started 300 ms after.
  auto clock = std::make_shared<ArrivalClock>();
  clock->mark(0, end + 2500);
  f.packager.restart(clock);
  for (int i = 0; i < 5; ++i) f.packager.on_frame(frame(f.v, i * 3000, i == 0));
  clock->mark(0.1, end + 400);
  f.run(5);
  const Segment* first_new = nullptr;
  for (auto& s : f.rendition("video").segments)
    if (s->discontinuity) first_new = s.get();
  ASSERT_NE(first_new, nullptr);
  EXPECT_EQ(first_new->pdt_ms, end + 300);
  const std::string mpd(as_chars(f.last->mpd.view()));
  auto periods = mpd_periods(mpd);
  ASSERT_EQ(periods.size(), 2u) << mpd;
  EXPECT_NEAR(period_start(periods[1]), double(end - f.last->availability_start_ms) / 1000, 1e-6) << mpd;
  EXPECT_EQ(attribute(periods[1], "availabilityTimeOffset"), "1.178") << periods[1];
}

TEST(Packager, ClosedGapsAddUpToAtMostAvailabilityTimeOffsetThenOneStays) {
  Feed f;
  f.config.window_segments = 20;  // every Period stays in the MPD
  f.packager.reconfigure(f.config);
  f.run(5);
  // Three reconnects, 300, 300 and 1000 ms after the last media's end: the second Period's media
  // is presented 0.3 s early, the third's 0.6 s; the fourth's would be 1.6 s early, more than
  // availabilityTimeOffset (1.478 s) can take, so its gap stays and it is presented on time.
  std::vector<std::int64_t> starts;  // program date time of each new publish's first segment
  for (std::int64_t gap : {300, 300, 1000}) starts.push_back(reconnect_after(f, gap) + gap);
  const std::string mpd(as_chars(f.last->mpd.view()));
  auto periods = mpd_periods(mpd);
  ASSERT_EQ(periods.size(), 4u) << mpd;
  EXPECT_EQ(attribute(periods[1], "availabilityTimeOffset"), "1.178") << periods[1];
  EXPECT_EQ(attribute(periods[2], "availabilityTimeOffset"), "0.878") << periods[2];
  EXPECT_EQ(attribute(periods[3], "availabilityTimeOffset"), "1.478") << periods[3];
  EXPECT_NEAR(period_start(periods[3]), double(starts[2] - f.last->availability_start_ms) / 1000, 1e-6) << mpd;
}

TEST(Packager, LongGapBeforeANewPeriodStaysOnTheMpdTimeline) {
  Feed f;
  std::int64_t old_end = 0;
  republish_after(f, 3000, &old_end);  // a publisher away for 3 s: the player waits, keeping its latency
  const std::string mpd(as_chars(f.last->mpd.view()));
  auto periods = mpd_periods(mpd);
  ASSERT_EQ(periods.size(), 2u) << mpd;
  const double ast = double(f.last->availability_start_ms) / 1000;
  EXPECT_NEAR(period_start(periods[1]), double(old_end + 3000) / 1000 - ast, 1e-6) << mpd;
  EXPECT_EQ(attribute(periods[1], "availabilityTimeOffset"), "1.478") << periods[1];
}

// Standard latency: the MPD lists complete segments only (none can be asked for early) and has no
// availabilityTimeOffset; a short gap is closed all the same, up to half a segment.
TEST(Packager, StandardLatencyClosesAShortGapAndKeepsALongerOne) {
  Feed f;
  Config hls = f.config;
  hls.low_latency = false;
  hls.window_segments = 20;  // every Period stays in the MPD
  f.packager.restart();
  f.packager.reconfigure(hls);
  f.run(5);
  std::vector<std::int64_t> ends;  // the media's end before each reconnect
  for (std::int64_t gap : {300, 1200}) ends.push_back(reconnect_after(f, gap));
  const std::string mpd(as_chars(f.last->mpd.view()));
  auto periods = mpd_periods(mpd);
  ASSERT_EQ(periods.size(), 3u) << mpd;
  const double ast = double(f.last->availability_start_ms) / 1000;
  EXPECT_NEAR(period_start(periods[1]), double(ends[0]) / 1000 - ast, 1e-6) << mpd;  // closed
  // 1.2 s, plus the 0.3 s already closed, is more than half a segment: it stays, on time.
  EXPECT_NEAR(period_start(periods[2]), double(ends[1] + 1200) / 1000 - ast, 1e-6) << mpd;
  EXPECT_EQ(mpd.find("availabilityTimeOffset"), std::string::npos) << mpd;
}

TEST(Packager, LiveLowLatencyMpdAddressesTheOpenSegmentUntilTheStreamEnds) {
  Feed f;
  f.run(5);
  auto mpd = std::string(as_chars(f.last->mpd.view()));
  // 23009-1 @r=-1: the segment in progress, of the target duration, repeated until the next update.
  EXPECT_NE(mpd.find("<S t=\"360000\" d=\"180000\" r=\"-1\"/>"), std::string::npos) << mpd;
  EXPECT_NE(mpd.find("availabilityTimeOffset=\"1.478\""), std::string::npos) << mpd;
  f.on_stop();
  mpd = std::string(as_chars(f.last->mpd.view()));
  EXPECT_EQ(mpd.find("r=\"-1\""), std::string::npos) << mpd;
}

TEST(Packager, StandardHlsListsWholeSegmentsWithoutLowLatencyTags) {
  Feed f;
  Config hls = f.config;
  hls.low_latency = false;
  hls.segment_target = std::chrono::milliseconds(4000);
  f.packager.restart();
  f.packager.reconfigure(hls);
  f.run(13, /*gop=*/120);
  auto pl = std::string(as_chars(f.rendition("video").playlist.view()));
  for (const char* ll : {"#EXT-X-PART", "PRELOAD-HINT", "SERVER-CONTROL", "RENDITION-REPORT"})
    EXPECT_EQ(pl.find(ll), std::string::npos) << ll << "\n" << pl;
  EXPECT_NE(pl.find("#EXT-X-TARGETDURATION:4\n"), std::string::npos) << pl;
  // Only complete segments: every #EXTINF has its URI, and the open segment is not listed.
  EXPECT_EQ(pl.rfind("#EXTINF") < pl.rfind(".m4s\n"), true);
  EXPECT_EQ(pl.substr(pl.size() - 5), ".m4s\n") << pl;
  auto mpd = std::string(as_chars(f.last->mpd.view()));
  EXPECT_EQ(mpd.find("availabilityTimeOffset"), std::string::npos);
  EXPECT_EQ(mpd.find("ServiceDescription"), std::string::npos);
  EXPECT_FALSE(f.last->low_latency);
  EXPECT_EQ(f.last->target_duration, 4);
}

TEST(Packager, NewSettingsAtAPublishStartAFreshWindowWithNumbersGoingOn) {
  Feed f;
  f.run(7);
  auto before = f.rendition("video").segments.back()->msn;
  Config longer = f.config;
  longer.part_target = std::chrono::milliseconds(1000);
  longer.segment_target = std::chrono::milliseconds(3000);
  f.packager.restart();
  f.packager.reconfigure(longer);
  f.run(10, /*gop=*/90);
  auto& v = f.rendition("video");
  ASSERT_FALSE(v.segments.empty());
  EXPECT_GT(v.segments.front()->msn, before);  // the old window is gone, numbers went on
  auto pl = std::string(as_chars(v.playlist.view()));
  EXPECT_NE(pl.find("#EXT-X-TARGETDURATION:3\n"), std::string::npos) << pl;
  EXPECT_NE(pl.find("PART-TARGET=1.022"), std::string::npos) << pl;
  for (auto& s : v.segments)
    for (auto& p : s->parts) EXPECT_LE(p->duration, 1.0 + 1e-9);
}

TEST(Packager, ChangedConfigurationGetsANewInitVersion) {
  Feed f;
  f.run(3);
  f.packager.on_track(video_track(0x28));  // a new SPS (resolution change)
  f.run(3, 30, 3 * 90000 + 3000, 3 * 48000 + 1024);
  auto& v = f.rendition("video");
  EXPECT_EQ(v.inits->size(), 2u);
  EXPECT_NE(as_chars(v.playlist.view()).find("init2.mp4"), std::string::npos);
  EXPECT_EQ(v.segments.back()->init_version, 2u);
}

TEST(Packager, EpochRiseIsOneDiscontinuityWithANewInitAndPeriodInEveryRendition) {
  Feed f;
  f.run(5);     // the jump comes in the middle of a segment
  f.epoch = 1;  // a timestamp jump: ingest keeps the times continuous and raises the epoch
  const std::int64_t jump_dts = f.next_v;
  f.run(6, 30, f.next_v, f.next_a);
  std::uint64_t video_disc_msn = 0;
  for (const char* name : {"video", "audio"}) {
    auto& r = f.rendition(name);
    int discontinuities = 0;
    const Segment* prev = nullptr;
    for (auto& s : r.segments) {
      if (prev) {  // numbering goes on
        EXPECT_EQ(s->msn, prev->msn + 1) << name;
      }
      if (s->discontinuity) {
        ++discontinuities;
        ASSERT_NE(prev, nullptr) << name;
        EXPECT_EQ(prev->init_version, 1u) << name;
        EXPECT_EQ(s->init_version, 2u) << name;
        if (std::string_view(name) == "video") {
          video_disc_msn = s->msn;
          EXPECT_EQ(s->start_dts, jump_dts);  // the first frame after the jump
        } else {
          EXPECT_EQ(s->msn, video_disc_msn);
        }
      }
      prev = s.get();
    }
    EXPECT_EQ(discontinuities, 1) << name;
    EXPECT_EQ(r.inits->size(), 2u) << name;
    auto pl = as_chars(r.playlist.view());
    EXPECT_NE(pl.find("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init2.mp4\""), std::string::npos) << pl;
  }
  auto periods = mpd_periods(as_chars(f.last->mpd.view()));
  ASSERT_EQ(periods.size(), 2u) << as_chars(f.last->mpd.view());
  // The new Period maps the media's own times (tfdt, going on from before the jump) onto its start:
  // S@t is media time and presentationTimeOffset that of the Period's start.
  EXPECT_NE(periods[1].find(fmt::format("presentationTimeOffset=\"{}\"", jump_dts)), std::string::npos) << periods[1];
  EXPECT_NE(periods[1].find(fmt::format("<S t=\"{}\"", jump_dts)), std::string::npos) << periods[1];
}

TEST(Packager, EpochRiseMidGopStartsTheDiscontinuityAtTheNextKeyframe) {
  Feed f;
  f.run(3);
  // The source's clock jumps two frames into a GOP: those frames end the segment before it.
  f.epoch = 1;
  const std::int64_t at = f.next_v;
  for (int i = 0; i < 30; ++i) {
    auto fv = frame(f.v, at + i * 3000, i == 2);
    fv.epoch = 1;
    if (auto view = f.packager.on_frame(fv)) f.seen(view);
  }
  f.run(2, 30, at + 30 * 3000, f.next_a);
  auto& v = f.rendition("video");
  const Segment* disc = nullptr;
  for (auto& s : v.segments)
    if (s->discontinuity) disc = s.get();
  ASSERT_NE(disc, nullptr);
  EXPECT_EQ(disc->start_dts, at + 2 * 3000);
}

TEST(Packager, EpochsCountFromZeroInEachPublish) {
  Feed f;
  f.run(3);
  f.epoch = 1;
  f.run(3, 30, f.next_v, f.next_a);
  f.packager.restart();
  f.epoch = 0;  // the next publish's epochs start over: its epoch 0 is no discontinuity of its own
  f.run(3);
  f.epoch = 1;
  f.run(3, 30, f.next_v, f.next_a);
  int discontinuities = 0;
  for (auto& s : f.rendition("video").segments) discontinuities += s->discontinuity;
  EXPECT_EQ(discontinuities, 3);
  EXPECT_EQ(f.rendition("video").inits->size(), 3u);
}

TEST(Packager, PublishedSegmentsAreNeverModified) {
  Feed f;
  f.run(1);
  auto before = f.last;
  auto open = before->rendition("video")->segments.back();
  auto parts = open->parts.size();
  f.run(1.6);
  EXPECT_EQ(open->parts.size(), parts);  // copy-on-write: readers of the old view see it unchanged
}

// A transcoder's ladder: two named video rungs with declared rates, the smaller leading.
struct Ladder {
  Config config;
  Packager packager{"s", config};
  std::shared_ptr<const StreamView> last;
  media::TrackConfig low = video_track(1), high = video_track(2), a = audio_track();

  Ladder() {
    low.track_id = 14;
    low.name = "160p";
    low.bandwidth = 220000;
    low.video->width = 284;
    low.video->height = 160;
    high.track_id = 10;
    high.name = "1080p";
    high.bandwidth = 6600000;
    high.video->width = 1920;
    high.video->height = 1080;
    packager.on_track(low);
    packager.on_track(high);
    packager.on_track(a);
  }
  // 30 fps, keyframes every second in both rungs; the high rung stops after `high_until` seconds
  // (and comes back at `high_again`).
  void run(double from, double to, double high_until = 1e9, double high_again = 1e9) {
    int vf = int(from * 30), af = int(from * 48000 / 1024);
    for (;;) {
      double vt = vf / 30.0, at = af * 1024 / 48000.0;
      if (vt > to && at > to) break;
      if (vt <= at) {
        if (auto view = packager.on_frame(frame(low, vf * 3000, vf % 30 == 0))) last = view;
        if (vt < high_until || vt >= high_again)
          if (auto view = packager.on_frame(frame(high, vf * 3000, vf % 30 == 0))) last = view;
        ++vf;
      } else {
        if (auto view = packager.on_frame(frame(a, af * 1024, true))) last = view;
        ++af;
      }
    }
  }
  std::string multivariant() const { return std::string(as_chars(last->multivariant.view())); }
  std::string mpd() const { return std::string(as_chars(last->mpd.view())); }
};

TEST(Packager, LadderRenditionsAreNamedByRungWithDeclaredBandwidthHighestFirst) {
  Ladder l;
  l.run(0, 7);
  auto mv = l.multivariant();
  auto hi = mv.find("1080p/index.m3u8"), lo = mv.find("160p/index.m3u8");
  ASSERT_NE(hi, std::string::npos) << mv;
  ASSERT_NE(lo, std::string::npos) << mv;
  EXPECT_LT(hi, lo);  // highest rung listed first
  // BANDWIDTH is the declared peak (measured rates here are tiny) plus the audio's.
  auto audio_peak = l.last->rendition("audio")->bandwidth();
  EXPECT_NE(mv.find("BANDWIDTH=" + std::to_string(6600000 + audio_peak) + ","), std::string::npos) << mv;
  EXPECT_NE(mv.find("RESOLUTION=1920x1080"), std::string::npos);
  // Same segment numbers in both rungs.
  auto& a = *l.last->rendition("1080p");
  auto& b = *l.last->rendition("160p");
  ASSERT_EQ(a.segments.size(), b.segments.size());
  for (std::size_t i = 0; i < a.segments.size(); ++i) {
    EXPECT_EQ(a.segments[i]->msn, b.segments[i]->msn);
    EXPECT_EQ(a.segments[i]->start_dts, b.segments[i]->start_dts);
    EXPECT_EQ(a.segments[i]->parts.size(), b.segments[i]->parts.size());
  }
}

TEST(Packager, LadderIsOneVideoAdaptationSetInTheMpd) {
  Ladder l;
  l.run(0, 7);
  auto mpd = l.mpd();
  std::size_t sets = 0;
  for (auto at = mpd.find("contentType=\"video\""); at != std::string::npos;
       at = mpd.find("contentType=\"video\"", at + 1))
    ++sets;
  EXPECT_EQ(sets, 1u) << mpd;
  EXPECT_NE(mpd.find("Representation id=\"1080p\""), std::string::npos) << mpd;
  EXPECT_NE(mpd.find("Representation id=\"160p\""), std::string::npos) << mpd;
  EXPECT_NE(mpd.find("bandwidth=\"6600000\""), std::string::npos) << mpd;
}

TEST(Packager, RungThatStopsLeavesTheMultivariantAndMpd) {
  Ladder l;
  l.run(0, 9, /*high_until=*/4);
  auto mv = l.multivariant();
  EXPECT_EQ(mv.find("1080p/index.m3u8"), std::string::npos) << mv;
  EXPECT_NE(mv.find("160p/index.m3u8"), std::string::npos) << mv;
  EXPECT_EQ(l.mpd().find("1080p"), std::string::npos);
  EXPECT_EQ(as_chars(l.last->rendition("160p")->playlist.view()).find("1080p"), std::string::npos);
}

TEST(Packager, RungThatComesBackStartsItsWindowOverWithTheLeadersNumbers) {
  Ladder l;
  l.run(0, 16, /*high_until=*/4, /*high_again=*/10);
  EXPECT_NE(l.multivariant().find("1080p/index.m3u8"), std::string::npos) << l.multivariant();
  auto& hi = *l.last->rendition("1080p");
  auto& lo = *l.last->rendition("160p");
  ASSERT_GE(hi.segments.size(), 2u);
  // Nothing from before the gap (its unfinished part would span it), then consecutive numbers,
  // each segment starting where the leader's of that number does, in the same discontinuity.
  EXPECT_GE(hi.segments.front()->start_dts, 10 * 90000);
  for (std::size_t i = 0; i < hi.segments.size(); ++i) {
    const Segment& s = *hi.segments[i];
    if (i > 0) {
      EXPECT_EQ(s.msn, hi.segments[i - 1]->msn + 1);
    }
    const Segment* leader = lo.find(s.msn);
    ASSERT_NE(leader, nullptr) << s.msn;
    EXPECT_EQ(s.start_dts, leader->start_dts) << s.msn;
    EXPECT_EQ(s.discontinuity_sequence, leader->discontinuity_sequence);
    EXPECT_FALSE(s.discontinuity);
    for (auto& part : s.parts) EXPECT_LE(part->duration, l.last->part_target + 1e-9) << s.msn;
  }
  std::string pl(as_chars(hi.playlist.view()));
  EXPECT_NE(pl.find("#EXT-X-MEDIA-SEQUENCE:" + std::to_string(hi.segments.front()->msn) + "\n"), std::string::npos)
      << pl;
  EXPECT_NE(l.mpd().find("Representation id=\"1080p\""), std::string::npos);
}

// A transcoder's source rung: the source passed through (B-frames: a keyframe's dts comes before
// its pts), no declared rate, handed over after the leading rung's frame of the same picture.
TEST(Packager, SourceRungWithBFramesStartsEachSegmentOnItsKeyframeWithTheLeadersNumber) {
  Config config;
  Packager packager{"s", config};
  std::shared_ptr<const StreamView> last;
  auto low = video_track(1), source = video_track(2);
  low.track_id = 14;
  low.name = "160p";
  low.bandwidth = 220000;
  source.track_id = 9;
  source.name = "source";
  packager.on_track(low);
  packager.on_track(source);
  // Decode order of 10 s at 30 fps, a keyframe every 30 pictures: I0 P3 B1 B2 P6 B4 B5 ...
  struct Coded {
    std::int64_t dts, pts;
    bool key;
  };
  std::vector<Coded> coded;
  for (int g = 0; g < 300; g += 30) {
    std::vector<int> order{g};
    for (int m = 1; m < 30; m += 3) {
      int p = std::min(m + 2, 29);
      order.push_back(g + p);
      for (int b = m; b < p; ++b) order.push_back(g + b);
    }
    for (int pic : order) coded.push_back({std::int64_t(coded.size()) * 3000, pic * 3000 + 6000LL, pic == g});
  }
  std::size_t next = 0;
  for (int pic = 0; pic < 300; ++pic) {
    std::int64_t pts = pic * 3000 + 6000;
    if (auto v = packager.on_frame(frame(low, pts, pic % 30 == 0))) last = v;
    for (; next < coded.size() && coded[next].pts <= pts; ++next) {
      auto f = frame(source, coded[next].dts, coded[next].key);
      f.pts = coded[next].pts;
      if (auto v = packager.on_frame(f)) last = v;
    }
  }
  ASSERT_TRUE(last);
  auto& a = *last->rendition("160p");
  auto& b = *last->rendition("source");
  ASSERT_GE(a.segments.size(), 4u);
  ASSERT_EQ(a.segments.size(), b.segments.size());
  for (std::size_t i = 0; i < a.segments.size(); ++i) {
    EXPECT_EQ(a.segments[i]->msn, b.segments[i]->msn);
    ASSERT_FALSE(b.segments[i]->parts.empty());
    EXPECT_TRUE(b.segments[i]->parts[0]->independent) << i;  // its keyframe first
    // The keyframe two pictures earlier in decode time than the leader's.
    EXPECT_EQ(b.segments[i]->start_dts, a.segments[i]->start_dts - 6000) << i;
    if (i + 1 < a.segments.size()) {
      EXPECT_NEAR(b.segments[i]->duration, a.segments[i]->duration, 1e-6) << i;
    }
  }
  // Declaring no rate, it is listed by its measured peak (tiny here), below the 160p rung.
  std::string mv(as_chars(last->multivariant.view()));
  auto lo = mv.find("160p/index.m3u8"), src = mv.find("source/index.m3u8");
  ASSERT_NE(src, std::string::npos) << mv;
  EXPECT_LT(lo, src) << mv;
}

TEST(StreamView, FlowsWhileLiveAndMediaCameWithinThreePartTargetsOrOneAndAHalfTargetDurations) {
  using std::chrono::milliseconds;
  StreamView v;
  v.target_duration = 2;
  v.configured_part_target = 0.5;
  auto made = v.made;
  EXPECT_TRUE(v.flowing(made));
  EXPECT_TRUE(v.flowing(made + milliseconds(1400)));
  EXPECT_FALSE(v.flowing(made + milliseconds(1600)));  // connected, but no part for 3 part targets
  v.configured_part_target = 0.2;                      // a second at least
  EXPECT_TRUE(v.flowing(made + milliseconds(900)));
  EXPECT_FALSE(v.flowing(made + milliseconds(1100)));
  v.low_latency = false;  // standard HLS: one and a half target durations
  EXPECT_TRUE(v.flowing(made + milliseconds(2900)));
  EXPECT_FALSE(v.flowing(made + milliseconds(3100)));
  v.live = false;
  EXPECT_FALSE(v.flowing(made));
}

}  // namespace
}  // namespace sf::origin
