#include "cmaf_ingest.h"

#include <gtest/gtest.h>

#include <chrono>

#include "cmaf_upload.h"
#include "sf/cmaf/fmp4.h"
#include "sf/media/codec_config.h"

namespace sf::origin {
namespace {

http::Request with_head(std::string head) {
  http::Request r;
  r.head = std::move(head);
  return r;
}

TEST(PushedSettings, TakenWithTheApisBoundsAllOrNone) {
  using std::chrono::milliseconds;
  std::string why;
  auto s = pushed_settings(
      with_head("StreamFlex-Latency: hls\r\nstreamflex-part-target: 300\r\nStreamFlex-Segment-Target: 1000\r\n"), why);
  EXPECT_EQ(why, "");
  EXPECT_FALSE(s.low_latency);
  EXPECT_EQ(s.part_target, milliseconds(300));
  EXPECT_EQ(s.segment_target, milliseconds(1000));
  s = pushed_settings(with_head("Content-Type: video/mp4\r\n"), why);  // none: the origin's own
  EXPECT_EQ(why, "");
  EXPECT_TRUE(s.low_latency);
  EXPECT_EQ(s.part_target, milliseconds(0));
  EXPECT_EQ(s.segment_target, milliseconds(0));
  s = pushed_settings(with_head("StreamFlex-Segment-Target: 1000\r\n"), why);  // only what is sent
  EXPECT_EQ(why, "");
  EXPECT_EQ(s.part_target, milliseconds(0));
  EXPECT_EQ(s.segment_target, milliseconds(1000));
  for (const char* bad :
       {"StreamFlex-Part-Target: 50\r\nStreamFlex-Segment-Target: 1000\r\n",
        "StreamFlex-Part-Target: 800\r\nStreamFlex-Segment-Target: 600\r\n", "StreamFlex-Segment-Target: 20000\r\n",
        "StreamFlex-Segment-Target: 1000ms\r\n", "StreamFlex-Latency: fast\r\nStreamFlex-Segment-Target: 1000\r\n"}) {
    why.clear();
    s = pushed_settings(with_head(bad), why);
    EXPECT_NE(why, "") << bad;
    EXPECT_TRUE(s.low_latency) << bad;
    EXPECT_EQ(s.segment_target, milliseconds(0)) << bad;
  }
}

TEST(RenditionOf, NamesOnlyWhatADashIfStreamsPathDeclares) {
  EXPECT_EQ(rendition_of("Streams(720p)"), "720p");
  EXPECT_EQ(rendition_of("x/Streams(360p_low.v2)/seg"), "360p_low.v2");
  EXPECT_EQ(rendition_of("init-stream0.m4s"), "");  // ffmpeg's names stay video/audio
  EXPECT_EQ(rendition_of("Streams()"), "");
  EXPECT_EQ(rendition_of("Streams(..)"), "");
  EXPECT_EQ(rendition_of("Streams(a/b)"), "");
  EXPECT_EQ(rendition_of("Streams(" + std::string(33, 'x') + ")"), "");
  EXPECT_EQ(rendition_of("Streams(720p"), "");
}

struct Recorder final : StreamSink {
  std::vector<media::TrackConfig>* tracks;
  explicit Recorder(std::vector<media::TrackConfig>* t) : tracks(t) {}
  void on_track(const media::TrackConfig& t) override { tracks->push_back(t); }
  void on_frame(const media::MediaFrame&) override {}
};

Bytes hex(std::string_view h) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(std::byte(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return Bytes::copy_of(out);
}

TEST(CmafIngest, AStreamsPathNamesTheRungAndBtrtDeclaresItsRate) {
  media::TrackConfig v;
  v.track_id = 1;
  v.type = media::MediaType::video;
  v.codec = media::Codec::h264;
  v.record = hex("0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800");
  auto cfg = media::parse_avcc(v.record.view());
  ASSERT_TRUE(cfg);
  v.video = *cfg;
  v.bandwidth = 3'080'000;
  v.name = "ignored: the path names it";
  auto init = cmaf::write_init_segment(v);
  ASSERT_TRUE(init);

  std::vector<media::TrackConfig> seen;
  CmafIngest ingest(std::make_unique<Recorder>(&seen));
  ASSERT_TRUE(ingest.push("720p", *init, "720p"));
  ASSERT_TRUE(ingest.push("stream0", *init));  // ffmpeg-style: no rendition name
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].name, "720p");
  EXPECT_EQ(seen[0].bandwidth, 3'080'000u);
  EXPECT_EQ(seen[1].name, "");
  EXPECT_NE(seen[0].track_id, seen[1].track_id);
}

// A 90 kHz H.264 track, as an encoder pushes it.
media::TrackConfig pushed_video_track() {
  media::TrackConfig v;
  v.track_id = 1;
  v.type = media::MediaType::video;
  v.codec = media::Codec::h264;
  v.timescale = 90000;
  v.record = hex("0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800");
  v.video = *media::parse_avcc(v.record.view());
  return v;
}

TEST(CmafIngest, AProducerReferenceTimeMarksTheStreamsArrival) {
  media::TrackConfig v = pushed_video_track();
  auto init = cmaf::write_init_segment(v);
  ASSERT_TRUE(init);
  std::vector<media::TrackConfig> seen;
  auto arrival = std::make_shared<ArrivalClock>();
  CmafIngest ingest(std::make_unique<Recorder>(&seen), 4.0, arrival);
  // prft v1, flags 24: media time 5 s of track 1 arrived 1.5 s before now (NTP: seconds since
  // 1900 . fraction).
  auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::int64_t wall = now_ms - 1500;
  std::uint64_t ntp = (std::uint64_t(wall / 1000 + 2208988800LL) << 32) | ((std::uint64_t(wall % 1000) << 32) / 1000);
  std::vector<std::byte> box;
  auto put = [&](std::uint64_t x, int n) {
    for (int i = n - 1; i >= 0; --i) box.push_back(std::byte(x >> (8 * i)));
  };
  put(32, 4);
  for (char c : std::string_view("prft")) box.push_back(std::byte(c));
  put(0x01000018, 4);
  put(1, 4);
  put(ntp, 8);
  put(5 * 90000, 8);
  auto prft = Bytes::copy_of(box);
  ASSERT_TRUE(ingest.push("360p", prft, "360p"));  // before the init: nothing to map it to
  EXPECT_FALSE(arrival->best());
  ASSERT_TRUE(ingest.push("360p", *init, "360p"));
  ASSERT_TRUE(ingest.push("360p", prft, "360p"));
  auto mark = arrival->best();
  ASSERT_TRUE(mark);
  EXPECT_NEAR(double(mark->wall_ms), double(wall), 1.0);
  // In the packager's timeline: the pushed time plus the ingest's headroom for edit lists.
  double headroom = std::chrono::duration<double>(cmaf::kMaxPresentationOffset).count();
  EXPECT_NEAR(mark->media_seconds, 5.0 + headroom, 1e-6);
  // A truncated box is refused.
  EXPECT_FALSE(ingest.push("360p", Bytes::copy_of(std::span(box).first(20)), "360p"));
}

// A chunk of `v`: three 3000-tick frames from `from` (the first a keyframe), sequence number `seq`,
// as one pushed object.
Bytes pushed_video_chunk(const media::TrackConfig& v, std::uint32_t seq, std::int64_t from) {
  std::vector<media::MediaFrame> f;
  for (int i = 0; i < 3; ++i)
    f.push_back({1, media::MediaType::video, media::Codec::h264, from + i * 3000, from + i * 3000, i == 0, 1,
                 Bytes::copy_of(as_bytes("frame"))});
  auto c = cmaf::write_chunk(v, seq, f, from + 9000, false);
  std::vector<std::byte> out(c.header.view().begin(), c.header.view().end());
  for (auto& b : c.payload) out.insert(out.end(), b.view().begin(), b.view().end());
  return Bytes::copy_of(out);
}

struct FrameRecorder final : StreamSink {
  std::vector<media::MediaFrame>* frames;
  explicit FrameRecorder(std::vector<media::MediaFrame>* f) : frames(f) {}
  void on_track(const media::TrackConfig&) override {}
  void on_frame(const media::MediaFrame& f) override { frames->push_back(f); }
};

TEST(CmafIngest, AnEndedRepresentationIsNotWaitedForUntilItPushesAgain) {
  const auto v = pushed_video_track();
  auto init = cmaf::write_init_segment(v);
  ASSERT_TRUE(init);
  auto chunk = [&v](std::uint32_t seq, std::int64_t from) { return pushed_video_chunk(v, seq, from); };
  std::vector<media::MediaFrame> out;
  CmafIngest ingest(std::make_unique<FrameRecorder>(&out), 4.0);
  ASSERT_TRUE(ingest.push("160p", *init, "160p"));
  ASSERT_TRUE(ingest.push("360p", *init, "360p"));
  ASSERT_TRUE(ingest.push("160p", chunk(1, 0), "160p"));
  ASSERT_TRUE(ingest.push("360p", chunk(1, 0), "360p"));
  ASSERT_TRUE(ingest.push("160p", chunk(2, 9000), "160p"));
  std::size_t before = out.size();
  EXPECT_EQ(before, 6u);  // both first chunks, interleaved; 160p's second waits for 360p
  ingest.end_representation("360p");
  EXPECT_EQ(out.size(), 9u);  // nothing waits for a stopped representation
  ASSERT_TRUE(ingest.push("160p", chunk(3, 18000), "160p"));
  EXPECT_EQ(out.size(), 12u);
  ASSERT_TRUE(ingest.push("360p", *init, "360p"));  // it comes back: waited for again
  ASSERT_TRUE(ingest.push("160p", chunk(4, 27000), "160p"));
  EXPECT_EQ(out.size(), 12u);
  ASSERT_TRUE(ingest.push("360p", chunk(2, 27000), "360p"));
  EXPECT_GE(out.size(), 15u);
}

TEST(PushedEpoch, AStreamFlexEpochHeaderOrZero) {
  EXPECT_EQ(pushed_epoch(with_head("StreamFlex-Epoch: 3\r\n")), 3u);
  EXPECT_EQ(pushed_epoch(with_head("Content-Type: video/mp4\r\n")), 0u);
  for (const char* bad : {"StreamFlex-Epoch: -1\r\n", "StreamFlex-Epoch: 1x\r\n", "StreamFlex-Epoch: 4294967296\r\n"})
    EXPECT_EQ(pushed_epoch(with_head(bad)), 0u) << bad;
}

TEST(CmafIngest, FramesCarryThePushedEpochFromTheFirstOnePushed) {
  const auto v = pushed_video_track();
  auto init = cmaf::write_init_segment(v);
  ASSERT_TRUE(init);
  auto chunk = [&v](std::uint32_t seq, std::int64_t from) { return pushed_video_chunk(v, seq, from); };
  for (std::uint32_t first : {0u, 2u}) {  // 2: an origin that restarted after two jumps
    std::vector<media::MediaFrame> out;
    {
      CmafIngest ingest(std::make_unique<FrameRecorder>(&out), 4.0);
      ASSERT_TRUE(ingest.push("360p", *init, "360p"));
      ASSERT_TRUE(ingest.push("360p", chunk(1, 0), "360p", first));
      ASSERT_TRUE(ingest.push("360p", chunk(2, 9000), "360p", first + 1));
    }  // what is queued goes out
    ASSERT_EQ(out.size(), 6u) << first;
    for (std::size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].epoch, i < 3 ? 0u : 1u) << first << " " << i;
  }
}

}  // namespace
}  // namespace sf::origin
