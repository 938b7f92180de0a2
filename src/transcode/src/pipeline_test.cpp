#include "pipeline.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <set>
#include <thread>

#include "sf/media/codec_config.h"
#include "sf/transcode/transcoder.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace sf::transcode {
namespace {

// A source made by our own encoder: 640x360 H.264 frames, a moving gradient.
struct Source {
  media::TrackConfig track;
  std::vector<media::MediaFrame> frames;
};

Source make_source(int w, int h, int count, std::int64_t step, std::int64_t start = 0, int gop = 1000) {
  EncoderParams p;
  p.width = w;
  p.height = h;
  p.fps = 90000.0 / step;
  p.rung.bitrate = 500000;
  p.rung.maxrate = 550000;
  p.rung.bufsize = 550000;
  p.rung.preset = "ultrafast";
  std::string error;
  auto enc = make_video_encoder(p, &error);
  EXPECT_TRUE(enc) << error;
  Source s;
  s.track = enc->track();
  s.track.track_id = 1;
  s.track.version = 1;
  auto pic = make_frame();
  pic->width = w;
  pic->height = h;
  pic->format = AV_PIX_FMT_YUV420P;
  EXPECT_EQ(av_frame_get_buffer(pic.get(), 0), 0);
  for (int i = 0; i < count; ++i) {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) pic->data[0][y * pic->linesize[0] + x] = static_cast<std::uint8_t>(x + y + i * 3);
    for (int y = 0; y < h / 2; ++y)
      for (int x = 0; x < w / 2; ++x) {
        pic->data[1][y * pic->linesize[1] + x] = static_cast<std::uint8_t>(128 + i);
        pic->data[2][y * pic->linesize[2] + x] = static_cast<std::uint8_t>(128 - i);
      }
    std::vector<EncodedFrame> out;
    EXPECT_TRUE(enc->encode(pic.get(), start + i * step, i % gop == 0, out));
    for (auto& e : out)
      s.frames.push_back({1, media::MediaType::video, media::Codec::h264, e.dts, e.pts, e.keyframe, 1, e.data});
  }
  std::vector<EncodedFrame> out;
  (void)enc->encode(nullptr, 0, false, out);
  for (auto& e : out)
    s.frames.push_back({1, media::MediaType::video, media::Codec::h264, e.dts, e.pts, e.keyframe, 1, e.data});
  return s;
}

// A source as a camera encoder sends it: libx264 with B-frames (dts before pts), IDR only on the
// frames in `keys` (indexes), 30 fps from `start`.
Source make_bframe_source(int w, int h, int count, const std::set<int>& keys, std::int64_t start = 30000) {
  const std::int64_t step = 3000;
  Source s;
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  EXPECT_TRUE(codec);
  if (!codec) return s;
  CodecContextPtr c(avcodec_alloc_context3(codec));
  c->width = w;
  c->height = h;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  c->time_base = AVRational{1, 90000};
  c->framerate = AVRational{30, 1};
  c->bit_rate = 500000;
  c->max_b_frames = 2;
  c->gop_size = 100000;
  c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  c->thread_count = 1;
  av_opt_set(c->priv_data, "preset", "ultrafast", 0);
  av_opt_set_int(c->priv_data, "forced-idr", 1, 0);
  // ultrafast turns B-frames off; put them back, with no adaptive placement and no scene cuts.
  av_opt_set(c->priv_data, "x264-params", "bframes=2:b-adapt=0:scenecut=0:keyint=infinite:rc-lookahead=0", 0);
  EXPECT_EQ(avcodec_open2(c.get(), codec, nullptr), 0);
  auto avcc = make_avcc(ByteView(reinterpret_cast<const std::byte*>(c->extradata), std::size_t(c->extradata_size)));
  EXPECT_TRUE(avcc);
  s.track.track_id = 1;
  s.track.version = 1;
  s.track.type = media::MediaType::video;
  s.track.codec = media::Codec::h264;
  s.track.record = *avcc;
  s.track.video = *media::parse_avcc(avcc->view());
  auto pic = make_frame();
  pic->width = w;
  pic->height = h;
  pic->format = AV_PIX_FMT_YUV420P;
  EXPECT_EQ(av_frame_get_buffer(pic.get(), 0), 0);
  PacketPtr pkt(av_packet_alloc());
  auto collect = [&] {
    while (avcodec_receive_packet(c.get(), pkt.get()) == 0) {
      s.frames.push_back(
          {1, media::MediaType::video, media::Codec::h264, pkt->dts, pkt->pts, (pkt->flags & AV_PKT_FLAG_KEY) != 0, 1,
           annexb_to_length_prefixed(ByteView(reinterpret_cast<const std::byte*>(pkt->data), std::size_t(pkt->size)))});
      av_packet_unref(pkt.get());
    }
  };
  for (int i = 0; i < count; ++i) {
    EXPECT_EQ(av_frame_make_writable(pic.get()), 0);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) pic->data[0][y * pic->linesize[0] + x] = static_cast<std::uint8_t>(x + y + i * 3);
    for (int y = 0; y < h / 2; ++y)
      for (int x = 0; x < w / 2; ++x) {
        pic->data[1][y * pic->linesize[1] + x] = static_cast<std::uint8_t>(128 + i);
        pic->data[2][y * pic->linesize[2] + x] = static_cast<std::uint8_t>(128 - i);
      }
    pic->pts = start + i * step;
    pic->pict_type = keys.count(i) ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    EXPECT_EQ(avcodec_send_frame(c.get(), pic.get()), 0);
    collect();
  }
  avcodec_send_frame(c.get(), nullptr);
  collect();
  return s;
}

struct Captured {
  std::mutex mu;
  std::condition_variable cv;
  bool gate = false;  // while set, on_frame waits (a slow sink)
  bool released = false;
  std::vector<std::string> order;
  std::map<std::uint32_t, media::TrackConfig> tracks;
  std::map<std::uint32_t, std::vector<media::MediaFrame>> frames;
  std::set<std::uint32_t> withdrawn;
  std::vector<std::pair<std::uint32_t, std::int64_t>> sequence;  // (track, pts) of every frame, in order
  void open_gate() {
    std::lock_guard lk(mu);
    gate = false;
    cv.notify_all();
  }
  bool wait_released() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(20), [&] { return released; });
  }
};

class Capture : public Sink {
 public:
  explicit Capture(std::shared_ptr<Captured> c) : c_(std::move(c)) {}
  void on_track(const media::TrackConfig& t) override {
    std::lock_guard lk(c_->mu);
    c_->order.push_back("track:" + t.name);
    c_->tracks[t.track_id] = t;
  }
  void on_frame(const media::MediaFrame& f) override {
    std::unique_lock lk(c_->mu);
    c_->cv.wait(lk, [&] { return !c_->gate; });
    c_->frames[f.track_id].push_back(f);
    c_->sequence.emplace_back(f.track_id, f.pts);
  }
  void on_withdraw(std::uint32_t id) override {
    std::lock_guard lk(c_->mu);
    c_->withdrawn.insert(id);
  }
  ~Capture() override {
    std::lock_guard lk(c_->mu);
    c_->released = true;
    c_->cv.notify_all();
  }

 private:
  std::shared_ptr<Captured> c_;
};

std::vector<std::int64_t> key_pts(const std::vector<media::MediaFrame>& frames);

Config test_config() {
  Config c;
  c.threads = 2;
  c.keyframe_interval = std::chrono::milliseconds(1000);
  c.profiles = "test=360p:640x360@60:400k:440k:ultrafast,180p:320x180@15:150k:165k:ultrafast";
  c.profile = "test";
  c.max_lag = std::chrono::milliseconds(60000);
  return c;
}

// Runs sources through a transcoder and waits until the pipeline let go of the sink.
std::shared_ptr<Captured> run(Transcoder& t, const std::vector<Source>& sources) {
  auto c = std::make_shared<Captured>();
  {
    auto in = t.open_stream("s", "", std::make_shared<Capture>(c));
    for (auto& s : sources) {
      in->on_track(s.track);
      for (auto& f : s.frames) in->on_frame(f);
    }
  }
  EXPECT_TRUE(c->wait_released()) << "the pipeline never released its sink";
  return c;
}

TEST(Pipeline, EveryRungHasKeyframesOnTheGridAtTheSamePts) {
  Metrics m;
  Transcoder t(test_config(), m);
  auto c = run(t, {make_source(640, 360, 90, 3000)});  // 3 s at 30 fps, one keyframe at 0
  ASSERT_EQ(c->tracks.size(), 2u);
  // The smallest rung is announced first: it leads the packager.
  ASSERT_GE(c->order.size(), 2u);
  EXPECT_EQ(c->order[0], "track:180p");
  EXPECT_EQ(c->order[1], "track:360p");
  std::map<std::string, std::vector<std::int64_t>> keys;
  for (auto& [id, frames] : c->frames) {
    auto& name = c->tracks[id].name;
    EXPECT_EQ(c->tracks[id].bandwidth, name == "360p" ? 440000u : 165000u);
    std::int64_t last = -1;
    for (auto& f : frames) {
      EXPECT_GT(f.dts, last);
      EXPECT_EQ(f.dts, f.pts);  // no B-frames
      last = f.dts;
      if (f.keyframe) keys[name].push_back(f.pts);
    }
  }
  EXPECT_EQ(keys["360p"], (std::vector<std::int64_t>{0, 90000, 180000}));
  EXPECT_EQ(keys["180p"], keys["360p"]);
  // Every picture's frames reach the sink smallest rung first, though the 15 fps rung's encoder
  // gives a picture back two source frames later than the 30 fps rung's.
  for (auto& f : c->frames[11]) {
    auto at = [&](std::uint32_t id) {
      return std::find(c->sequence.begin(), c->sequence.end(), std::pair{id, f.pts}) - c->sequence.begin();
    };
    EXPECT_LT(at(11), at(10)) << f.pts;
  }
  EXPECT_EQ(c->frames[10].size(), 90u);              // 360p keeps 30 fps
  EXPECT_NEAR(double(c->frames[11].size()), 45, 2);  // 180p capped at 15 fps
  auto& v = *c->tracks[11].video;
  EXPECT_EQ(v.width, 320u);
  EXPECT_EQ(v.height, 180u);
  EXPECT_EQ(v.codec_string.substr(0, 5), "avc1.");
  EXPECT_EQ(c->withdrawn, (std::set<std::uint32_t>{10, 11}));  // the end of the input
}

TEST(Pipeline, SourceGrowingMidStreamAddsTheRungThatNowFits) {
  Metrics m;
  Transcoder t(test_config(), m);
  auto small = make_source(320, 180, 30, 3000);
  auto big = make_source(640, 360, 60, 3000, 90000);
  big.track.version = 2;
  for (auto& f : big.frames) f.config_version = 2;
  auto c = run(t, {small, big});
  // 180p all along; 360p only once the source is 640x360.
  ASSERT_TRUE(c->frames.count(11));
  ASSERT_TRUE(c->frames.count(10));
  EXPECT_GE(c->frames[10].front().pts, 90000);
  EXPECT_TRUE(c->frames[10].front().keyframe);
  EXPECT_LT(c->frames[11].front().pts, 90000);
  std::set<std::int64_t> keys180, keys360;
  for (auto& f : c->frames[11])
    if (f.keyframe && f.pts >= 90000) keys180.insert(f.pts);
  for (auto& f : c->frames[10])
    if (f.keyframe) keys360.insert(f.pts);
  EXPECT_EQ(keys180, keys360);
}

TEST(Pipeline, TimestampJumpKeepsTimeGoingForward) {
  Metrics m;
  Transcoder t(test_config(), m);
  auto a = make_source(640, 360, 30, 3000);
  auto b = make_source(640, 360, 30, 3000, 900000);  // 10 s later
  auto c = run(t, {a, b});
  for (auto& [id, frames] : c->frames) {
    std::int64_t last = -1;
    for (auto& f : frames) {
      ASSERT_GT(f.dts, last);
      last = f.dts;
    }
  }
  // The first picture after the jump is on a new grid cell: a keyframe in both rungs.
  for (auto id : {10u, 11u}) {
    auto it = std::find_if(c->frames[id].begin(), c->frames[id].end(), [](auto& f) { return f.pts >= 900000; });
    ASSERT_NE(it, c->frames[id].end());
    EXPECT_TRUE(it->keyframe);
  }
}

TEST(Pipeline, SourceDiscontinuityIsAKeyframeWithTheNewEpochInEveryRung) {
  Metrics m;
  Transcoder t(test_config(), m);
  // Ingest signalled a timestamp jump at frame 40 (pts 120000, between grid keyframes): its
  // times go on, the epoch rises.
  auto src = make_source(640, 360, 90, 3000);
  for (auto& f : src.frames) f.epoch = f.pts >= 120000 ? 1 : 0;
  auto c = run(t, {src});
  for (auto id : {10u, 11u}) {
    ASSERT_FALSE(c->frames[id].empty()) << id;
    for (auto& f : c->frames[id]) EXPECT_EQ(f.epoch, f.pts >= 120000 ? 1u : 0u) << id << " pts " << f.pts;
    // The grid starts over at the discontinuity, so the segment after it is a whole one.
    EXPECT_EQ(key_pts(c->frames[id]), (std::vector<std::int64_t>{0, 90000, 120000, 210000})) << id;
  }
}

TEST(Pipeline, QueueIsBoundedWhenTheSinkStalls) {
  Metrics m;
  auto cfg = test_config();
  cfg.max_queue_frames = 10;
  Transcoder t(cfg, m);
  auto c = std::make_shared<Captured>();
  c->gate = true;
  auto src = make_source(640, 360, 60, 3000);
  {
    auto in = t.open_stream("s", "", std::make_shared<Capture>(c));
    in->on_track(src.track);
    for (auto& f : src.frames) in->on_frame(f);
    auto stats = t.stats();
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_LE(stats[0].queue_frames, 10);
    EXPECT_GT(stats[0].skipped_frames, 0);
  }
  c->open_gate();
  EXPECT_TRUE(c->wait_released());
}

// AAC audio (passed through) interleaved with the video as a live source sends it: 1024 samples
// at 48 kHz per frame, each before the video frame it precedes in time.
TEST(Pipeline, AudioBeforeTheFirstRungFrameWaitsForItInsteadOfBeingLost) {
  Metrics m;
  Transcoder t(test_config(), m);
  auto src = make_source(320, 180, 60, 3000);
  media::TrackConfig audio;
  audio.track_id = 2;
  audio.type = media::MediaType::audio;
  audio.codec = media::Codec::aac;
  audio.timescale = 48000;
  audio.version = 1;
  const std::byte asc[2] = {std::byte{0x11}, std::byte{0x90}};
  audio.record = Bytes::copy_of(ByteView(asc, 2));
  audio.audio = *media::parse_audio_specific_config(audio.record.view());
  const std::byte payload[4] = {std::byte{0x21}, std::byte{0x10}, std::byte{0x04}, std::byte{0x60}};
  auto c = std::make_shared<Captured>();
  std::int64_t pushed = 0;
  {
    auto in = t.open_stream("s", "", std::make_shared<Capture>(c));
    in->on_track(src.track);
    in->on_track(audio);
    auto push_until = [&](std::int64_t video_dts) {
      for (; pushed * 1024 * 90000 <= video_dts * 48000; ++pushed)
        in->on_frame({2, media::MediaType::audio, media::Codec::aac, pushed * 1024, pushed * 1024, true, 1,
                      Bytes::copy_of(ByteView(payload, 4))});
    };
    for (std::size_t i = 0; i < src.frames.size(); ++i) {
      if (i == 10) {
        // The first rung frame reaches the sink after the input has gone on for a while.
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        for (int n = 0; n < 4000 && std::chrono::steady_clock::now() < deadline; ++n) {
          {
            std::lock_guard lk(c->mu);
            if (!c->sequence.empty()) break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
      push_until(src.frames[i].dts);
      in->on_frame(src.frames[i]);
    }
  }
  ASSERT_TRUE(c->wait_released());
  std::lock_guard lk(c->mu);
  ASSERT_FALSE(c->sequence.empty());
  EXPECT_NE(c->sequence.front().first, 2u);  // a rung frame leads, never audio
  auto& out = c->frames[2];
  ASSERT_EQ(std::int64_t(out.size()), pushed);  // every audio frame, the early ones included
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].pts, std::int64_t(i) * 1024);
}

TEST(Pipeline, PassthroughForwardsUntouched) {
  Metrics m;
  Transcoder t(test_config(), m);
  auto c = std::make_shared<Captured>();
  auto src = make_source(320, 180, 5, 3000);
  {
    auto in = t.open_stream("s", "passthrough", std::make_shared<Capture>(c));
    in->on_track(src.track);
    for (auto& f : src.frames) in->on_frame(f);
  }
  EXPECT_TRUE(c->released);
  EXPECT_EQ(c->frames[1].size(), 5u);
  EXPECT_EQ(c->frames[1][0].data.data(), src.frames[0].data.data());  // the same bytes, not a copy
}

// Source rung: profile "src" over a 640x360 B-frame source; its 360p rung is the source's size
// and leaves the ladder to the source rung (track 9); 270p is track 11, 180p track 12.
Config source_config() {
  auto c = test_config();
  c.profiles =
      "src=source,360p:640x360@60:400k:440k:ultrafast,270p:480x270@30:300k:330k:ultrafast,"
      "180p:320x180@15:150k:165k:ultrafast";
  c.profile = "src";
  c.max_queue_frames = 400;  // the whole source is queued at once
  return c;
}

std::vector<std::int64_t> key_pts(const std::vector<media::MediaFrame>& frames) {
  std::vector<std::int64_t> out;
  for (auto& f : frames)
    if (f.keyframe) out.push_back(f.pts);
  return out;
}

TEST(Pipeline, SourceRungPassesTheSourceThroughAndTheGridFollowsItsKeyframes) {
  Metrics m;
  Transcoder t(source_config(), m);
  // Irregular source keyframes, 30 fps, a 1 s target: 20 frames (0.67 s) after a forced one is too
  // early, 35 (1.17 s) or 70 (2.33 s, longer than the target) are not.
  auto src = make_bframe_source(640, 360, 180, {0, 20, 40, 55, 80, 100, 115, 150, 165});
  ASSERT_EQ(src.frames.size(), 180u);
  ASSERT_TRUE(std::any_of(src.frames.begin(), src.frames.end(), [](auto& f) { return f.dts < f.pts; }))
      << "the source should have B-frames";
  auto c = run(t, {src});
  // The smallest rung is announced first (it leads the packager), the source rung last.
  EXPECT_EQ(c->order, (std::vector<std::string>{"track:180p", "track:270p", "track:source"}));
  ASSERT_EQ(c->tracks.size(), 3u);
  EXPECT_EQ(c->tracks[9].name, "source");
  EXPECT_EQ(c->tracks[9].bandwidth, 0u);  // measured by the packager
  EXPECT_TRUE(c->tracks[9].record.view().data() == src.track.record.view().data());
  EXPECT_EQ(c->tracks[9].video->codec_string, src.track.video->codec_string);
  // The source's frames, untouched and not copied, in decode order.
  ASSERT_EQ(c->frames[9].size(), src.frames.size());
  for (std::size_t i = 0; i < src.frames.size(); ++i) {
    auto& a = c->frames[9][i];
    auto& b = src.frames[i];
    EXPECT_EQ(a.data.data(), b.data.data()) << i;
    EXPECT_EQ(a.data.size(), b.data.size()) << i;
    EXPECT_EQ(std::tuple(a.dts, a.pts, a.keyframe), std::tuple(b.dts, b.pts, b.keyframe)) << i;
  }
  // Forced: frames 0, 40, 80, 115, 150 (not 20, 55, 100, 165: too soon after a forced one).
  std::vector<std::int64_t> forced;
  for (int i : {0, 40, 80, 115, 150}) forced.push_back(30000 + i * 3000);
  EXPECT_EQ(key_pts(c->frames[11]), forced);
  EXPECT_EQ(key_pts(c->frames[12]), forced);
  auto source_keys = key_pts(c->frames[9]);
  for (auto k : forced) EXPECT_TRUE(std::count(source_keys.begin(), source_keys.end(), k)) << k;
  // The packager cuts where the leader's keyframe is: each forced picture reaches the sink in the
  // smallest rung before the source rung's keyframe of the same picture.
  for (auto k : forced) {
    auto at = [&](std::uint32_t id) {
      return std::find(c->sequence.begin(), c->sequence.end(), std::pair{id, k}) - c->sequence.begin();
    };
    EXPECT_LT(at(12), at(11)) << k;
    EXPECT_LT(at(11), at(9)) << k;
  }
  EXPECT_EQ(c->frames[11].size(), 180u);
}

TEST(Pipeline, SourceDiscontinuityWithASourceRungWaitsForTheSourcesKeyframe) {
  Metrics m;
  Transcoder t(source_config(), m);
  // Source keyframes every 20 frames (0.67 s, too soon for the 1 s target on their own); ingest
  // signalled a jump at frame 45 (pts 165000): the rungs' discontinuity is the source's next
  // keyframe, frame 60, forced though it comes 0.67 s after the last forced one (frame 40).
  auto src = make_bframe_source(640, 360, 120, {0, 20, 40, 60, 80, 100});
  ASSERT_EQ(src.frames.size(), 120u);
  const std::int64_t jump = 30000 + 45 * 3000, key = 30000 + 60 * 3000;
  bool after = false;
  for (auto& f : src.frames) {  // decode order: the epoch rises at the first frame of the jump
    after = after || f.pts >= jump;
    f.epoch = after ? 1 : 0;
  }
  auto c = run(t, {src});
  std::vector<std::int64_t> forced;
  for (int i : {0, 40, 60, 100}) forced.push_back(30000 + i * 3000);
  for (auto id : {11u, 12u}) {
    EXPECT_EQ(key_pts(c->frames[id]), forced) << id;
    for (auto& f : c->frames[id]) EXPECT_EQ(f.epoch, f.pts >= key ? 1u : 0u) << id << " pts " << f.pts;
  }
  // The source rung's frames keep the epoch ingest gave them.
  for (std::size_t i = 0; i < src.frames.size(); ++i) EXPECT_EQ(c->frames[9][i].epoch, src.frames[i].epoch) << i;
}

TEST(Pipeline, SourceRungWithoutAnyOtherRung) {
  // A source smaller than every rung: only the source rung, which then leads.
  Metrics m;
  Transcoder t(source_config(), m);
  auto src = make_bframe_source(256, 144, 30, {0});
  auto c = run(t, {src});
  EXPECT_EQ(c->order, (std::vector<std::string>{"track:source"}));
  EXPECT_EQ(c->frames[9].size(), src.frames.size());
}

TEST(Pipeline, SourceRungStatistics) {
  Metrics m;
  Transcoder t(source_config(), m);
  auto c = std::make_shared<Captured>();
  auto src = make_bframe_source(640, 360, 60, {0, 30});
  auto in = t.open_stream("s", "", std::make_shared<Capture>(c));
  in->on_track(src.track);
  for (auto& f : src.frames) in->on_frame(f);
  // The input stays open (its statistics listed): wait until the decode stage has seen the pictures.
  std::vector<StreamStats> stats;
  for (int i = 0; i < 200; ++i) {
    stats = t.stats();
    if (!stats.empty() && !stats[0].rungs.empty() && stats[0].rungs[0].frames >= 50) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(stats.size(), 1u);
  ASSERT_EQ(stats[0].rungs.size(), 3u);
  EXPECT_EQ(stats[0].rungs[0].name, "source");
  EXPECT_EQ(stats[0].rungs[0].width, 640u);
  EXPECT_EQ(stats[0].rungs[0].declared_bps, 0);
  EXPECT_GE(stats[0].rungs[0].frames, 50);
  EXPECT_EQ(stats[0].rungs[1].name, "270p");
  in.reset();
  EXPECT_TRUE(c->wait_released());
}

TEST(RestorePolicy, WaitsForASustainedCalmAndBacksOffARungDroppedAgain) {
  RestorePolicy p({.hold = 10, .max_hold = 100, .calm_lag = 0.5, .max_load = 0.7});
  p.on_drop(0, 0);
  EXPECT_FALSE(p.ready(0, 9.9));
  p.observe_lag(5, 1.0);  // still behind at 5 s: the calm starts over
  EXPECT_FALSE(p.ready(0, 14.9));
  p.observe_lag(14, 0.4);
  EXPECT_TRUE(p.ready(0, 15));
  p.observe_load(15, 0.9);  // no room for the rung's cost in the pool
  EXPECT_FALSE(p.ready(0, 24.9));
  p.observe_load(16, 0.6);
  EXPECT_TRUE(p.ready(0, 25));
  p.on_restore(0, 25);
  p.on_drop(0, 30);  // dropped again soon after coming back: twice the hold
  EXPECT_EQ(p.hold(0), 20);
  EXPECT_FALSE(p.ready(0, 49.9));
  EXPECT_TRUE(p.ready(0, 50));
  p.on_restore(0, 50);
  p.on_drop(0, 55);
  EXPECT_EQ(p.hold(0), 40);
  p.on_restore(0, 95);
  p.on_drop(0, 96);
  EXPECT_EQ(p.hold(0), 80);
  p.on_restore(0, 176);
  p.on_drop(0, 177);
  EXPECT_EQ(p.hold(0), 100);  // at most max_hold
  p.on_restore(0, 277);
  p.on_drop(0, 400);  // it had stayed up longer than max_hold: the back-off starts over
  EXPECT_EQ(p.hold(0), 10);
  p.on_drop(1, 401);  // each rung has its own
  EXPECT_EQ(p.hold(1), 10);
  // A restore starts the calm over for the next rung too.
  p.on_restore(1, 420);
  EXPECT_FALSE(p.ready(0, 429.9));
  EXPECT_TRUE(p.ready(0, 430));
}

// Feeds `src` in real time (30 fps, as a camera) except for `burst` frames after the first `lead`
// ones, sent at once while the sink is held until the top rung is dropped (the stream far behind).
// Returns the stream's statistics just before the input ends.
StreamStats fall_behind_then_keep_up(Transcoder& t, const std::shared_ptr<Captured>& c, const Source& src,
                                     std::size_t lead, std::size_t burst) {
  auto in = t.open_stream("s", "", std::make_shared<Capture>(c));
  in->on_track(src.track);
  auto paced = [&](std::size_t from, std::size_t to) {
    auto start = std::chrono::steady_clock::now();
    for (std::size_t i = from; i < to && i < src.frames.size(); ++i) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(33333 * std::int64_t(i - from)));
      in->on_frame(src.frames[i]);
    }
  };
  paced(0, lead);
  {
    std::lock_guard lk(c->mu);
    c->gate = true;
  }
  for (std::size_t i = lead; i < lead + burst && i < src.frames.size(); ++i) in->on_frame(src.frames[i]);
  auto dropped = [&] {
    auto s = t.stats();
    return !s.empty() && s[0].dropped_rungs > 0;
  };
  for (int n = 0; n < 500 && !dropped(); ++n) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(dropped()) << "the top rung was never dropped";
  c->open_gate();
  paced(lead + burst, src.frames.size());
  // The encoders hold a picture or two until the input ends; the rest is out.
  std::vector<StreamStats> stats = t.stats();
  for (int n = 0; n < 500 && !stats.empty() && stats[0].queue_frames > 2; ++n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stats = t.stats();
  }
  in.reset();
  EXPECT_TRUE(c->wait_released());
  return stats.empty() ? StreamStats{} : stats[0];
}

TEST(Pipeline, DroppedRungComesBackAtAGridKeyframeOnceTheStreamKeepsUp) {
  Metrics m;
  auto cfg = test_config();
  cfg.max_lag = std::chrono::milliseconds(500);
  cfg.restore_hold = std::chrono::milliseconds(600);
  cfg.restore_load = 2.0;  // a shared machine's load must not decide this test (see the next one)
  Transcoder t(cfg, m);
  auto c = std::make_shared<Captured>();
  auto src = make_source(640, 360, 150, 3000);  // 5 s at 30 fps, one source keyframe
  auto stats = fall_behind_then_keep_up(t, c, src, 20, 30);
  EXPECT_EQ(stats.dropped_rungs, 1);
  EXPECT_EQ(stats.restored_rungs, 1);
  ASSERT_EQ(stats.rungs.size(), 2u);
  EXPECT_EQ(stats.rungs[0].name, "360p");
  EXPECT_TRUE(stats.rungs[0].active);
  // Announced again (a new encoder) after the drop, with a new version.
  EXPECT_EQ(std::count(c->order.begin(), c->order.end(), "track:360p"), 2);
  EXPECT_EQ(c->tracks[10].version, 2u);
  auto& top = c->frames[10];
  auto& low = c->frames[11];
  ASSERT_FALSE(top.empty());
  // A gap, then a keyframe on the grid (the 180p rung has a keyframe at the same pts), then every
  // picture to the end.
  std::size_t resumed = 0;
  for (std::size_t i = 1; i < top.size(); ++i) {
    EXPECT_GT(top[i].dts, top[i - 1].dts);
    if (top[i].pts - top[i - 1].pts > 3000) resumed = i;
  }
  ASSERT_GT(resumed, 0u) << "no gap in the 360p rung";
  EXPECT_TRUE(top[resumed].keyframe);
  EXPECT_EQ(top[resumed].pts % 90000, 0);
  auto low_keys = key_pts(low);
  for (auto k : key_pts(top)) EXPECT_TRUE(std::count(low_keys.begin(), low_keys.end(), k)) << k;
  EXPECT_EQ(top.back().pts, src.frames.back().pts);
  EXPECT_EQ(std::int64_t(top.size() - resumed), (top.back().pts - top[resumed].pts) / 3000 + 1);
  // Restored once the backlog was gone and the stream calm for the hold (0.6 s), within a few
  // seconds of media.
  EXPECT_LE(top[resumed].pts, 4 * 90000);
}

TEST(Pipeline, DroppedRungStaysDroppedWithoutRoomInThePool) {
  Metrics m;
  auto cfg = test_config();
  cfg.max_lag = std::chrono::milliseconds(500);
  cfg.restore_hold = std::chrono::milliseconds(600);
  cfg.restore_load = 1e-6;  // no encoding fits
  Transcoder t(cfg, m);
  auto c = std::make_shared<Captured>();
  auto stats = fall_behind_then_keep_up(t, c, make_source(640, 360, 120, 3000), 20, 30);
  EXPECT_EQ(stats.dropped_rungs, 1);
  EXPECT_EQ(stats.restored_rungs, 0);
  EXPECT_EQ(std::count(c->order.begin(), c->order.end(), "track:360p"), 1);
}

TEST(Transcoder, RefusesUnknownProfileAndEncoder) {
  Metrics m;
  auto cfg = test_config();
  cfg.profile = "nope";
  EXPECT_THROW(Transcoder(cfg, m), std::invalid_argument);
  cfg = test_config();
  cfg.encoder = "no_such_encoder";
  EXPECT_THROW(Transcoder(cfg, m), std::invalid_argument);
}

// bench/transcode_ladder.sh MODES=scalers measured libswscale per picture (M instructions) for
// the default ladder from 1080p: 480p from 1080p 25.61 / from 720p 7.45; 360p 18.78 / 5.38 / from
// 480p 3.78; 160p 14.39 / 7.78 / 4.01 / from 360p 3.08: the smallest larger picture is the cheapest.
TEST(ScalingSource, CascadeTakesTheSmallestLargerPictureTheCheapest) {
  std::vector<ScalingCandidate> made{{1920, 1080, true}};
  // The default ladder from 1080p in plan order, each rung added once it is made.
  struct Step {
    int w, h;
    std::size_t from;
  };
  for (auto [w, h, from] : {Step{1280, 720, 0}, Step{854, 480, 1}, Step{640, 360, 2}, Step{284, 160, 3}}) {
    EXPECT_EQ(scaling_source(made, w, h, true), from) << w << "x" << h;
    EXPECT_EQ(scaling_source(made, w, h, false), 0u) << w << "x" << h;
    made.push_back({w, h, true});
  }
}

TEST(ScalingSource, NeverFromAPictureSmallerInEitherDimensionOrNotYuv420p) {
  // A wide picture of the same area is not large enough for a taller rung.
  std::vector<ScalingCandidate> made{{1920, 1080, true}, {1280, 360, true}, {960, 540, true}};
  EXPECT_EQ(scaling_source(made, 640, 480, true), 2u);
  EXPECT_EQ(scaling_source(made, 1000, 300, true), 1u);
  EXPECT_EQ(scaling_source(made, 1280, 720, true), 0u);  // nothing else is large enough
  // A scaled picture in another format is skipped; the source is taken whatever its format.
  std::vector<ScalingCandidate> other{{1920, 1080, false}, {1280, 720, false}, {1280, 720, true}};
  EXPECT_EQ(scaling_source(other, 640, 360, true), 2u);
  other.pop_back();
  EXPECT_EQ(scaling_source(other, 640, 360, true), 0u);
  EXPECT_EQ(scaling_source({}, 640, 360, true), 0u);
}

}  // namespace
}  // namespace sf::transcode
