#include "pipeline.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <set>
#include <thread>

#include "sf/transcode/transcoder.h"

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

struct Captured {
  std::mutex mu;
  std::condition_variable cv;
  bool gate = false;  // while set, on_frame waits (a slow sink)
  bool released = false;
  std::vector<std::string> order;
  std::map<std::uint32_t, media::TrackConfig> tracks;
  std::map<std::uint32_t, std::vector<media::MediaFrame>> frames;
  std::set<std::uint32_t> withdrawn;
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

TEST(Transcoder, RefusesUnknownProfileAndEncoder) {
  Metrics m;
  auto cfg = test_config();
  cfg.profile = "nope";
  EXPECT_THROW(Transcoder(cfg, m), std::invalid_argument);
  cfg = test_config();
  cfg.encoder = "no_such_encoder";
  EXPECT_THROW(Transcoder(cfg, m), std::invalid_argument);
}

}  // namespace
}  // namespace sf::transcode
