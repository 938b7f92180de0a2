#include "passaudio.h"

#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <libavutil/channel_layout.h>
}

#include "sf/media/codec_config.h"
#include "sf/transcode/transcoder.h"

namespace sf::transcode {
namespace {

// What a passthrough stream's sink saw, in order.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  bool gate = false;     // while set, announcing track 2 waits (a sink that stalls a worker)
  bool blocked = false;  // a call is waiting at the gate
  bool released = false;
  std::vector<std::string> order;  // "track:<id>" and "frame:<id>"
  std::map<std::uint32_t, media::TrackConfig> tracks;
  std::map<std::uint32_t, std::vector<media::MediaFrame>> frames;
  std::set<std::thread::id> threads;
  bool wait_released() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(20), [&] { return released; });
  }
};

class Capture : public Sink {
 public:
  explicit Capture(std::shared_ptr<Seen> s) : s_(std::move(s)) {}
  void on_track(const media::TrackConfig& t) override {
    std::unique_lock lk(s_->mu);
    if (t.track_id == 2 && s_->gate) {
      s_->blocked = true;
      s_->cv.notify_all();
      s_->cv.wait(lk, [&] { return !s_->gate; });
    }
    s_->order.push_back("track:" + std::to_string(t.track_id));
    s_->tracks[t.track_id] = t;
    s_->threads.insert(std::this_thread::get_id());
  }
  void on_frame(const media::MediaFrame& f) override {
    std::lock_guard lk(s_->mu);
    s_->order.push_back("frame:" + std::to_string(f.track_id));
    s_->frames[f.track_id].push_back(f);
    s_->threads.insert(std::this_thread::get_id());
  }
  ~Capture() override {
    std::lock_guard lk(s_->mu);
    s_->released = true;
    s_->cv.notify_all();
  }

 private:
  std::shared_ptr<Seen> s_;
};

// A stand-in H.264 track: passthrough never decodes the video, so its frames are opaque bytes.
media::TrackConfig video_track() {
  media::TrackConfig t;
  t.track_id = 1;
  t.type = media::MediaType::video;
  t.codec = media::Codec::h264;
  t.version = 1;
  media::VideoConfig v;
  v.codec = media::Codec::h264;
  v.width = 640;
  v.height = 360;
  v.codec_string = "avc1.64001e";
  t.video = v;
  return t;
}

media::MediaFrame video_frame(int i) {
  std::vector<std::byte> body(64 + i, std::byte(i));
  return {1,
          media::MediaType::video,
          media::Codec::h264,
          std::int64_t(i) * 3000,
          std::int64_t(i) * 3000,
          i % 30 == 0,
          1,
          Bytes::copy_of(ByteView(body.data(), body.size()))};
}

// One second of a 440 Hz tone, mono 44.1 kHz, encoded by libmp3lame in-process.
struct Mp3 {
  media::TrackConfig track;
  std::vector<media::MediaFrame> frames;
};

Mp3 encode_mp3(int rate = 44100, const char* name = "libmp3lame", media::Codec codec = media::Codec::mp3) {
  Mp3 s;
  const AVCodec* enc = avcodec_find_encoder_by_name(name);
  EXPECT_TRUE(enc);
  if (!enc) return s;
  CodecContextPtr c(avcodec_alloc_context3(enc));
  c->sample_fmt = codec == media::Codec::mp3 ? AV_SAMPLE_FMT_S16P : AV_SAMPLE_FMT_FLTP;
  c->sample_rate = rate;
  av_channel_layout_default(&c->ch_layout, 1);
  c->bit_rate = 64000;
  c->time_base = AVRational{1, rate};
  EXPECT_EQ(avcodec_open2(c.get(), enc, nullptr), 0);
  s.track.track_id = 2;
  s.track.type = media::MediaType::audio;
  s.track.codec = codec;
  s.track.timescale = std::uint32_t(rate);
  s.track.version = 1;
  if (codec == media::Codec::aac) {  // the AudioSpecificConfig, as ingest carries it
    s.track.record =
        Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(c->extradata), std::size_t(c->extradata_size)));
    s.track.audio = *media::parse_audio_specific_config(s.track.record.view());
  } else
    s.track.audio = media::AudioConfig{codec, 0, std::uint32_t(rate), 1, std::uint32_t(c->frame_size), ""};
  auto frame = make_frame();
  PacketPtr pkt(av_packet_alloc());
  auto drain = [&] {
    while (avcodec_receive_packet(c.get(), pkt.get()) == 0) {
      s.frames.push_back(
          {2, media::MediaType::audio, codec, pkt->dts, pkt->pts, true, 1,
           Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(pkt->data), std::size_t(pkt->size)))});
      av_packet_unref(pkt.get());
    }
  };
  const int frame_size = c->frame_size > 0 ? c->frame_size : 1152;
  for (std::int64_t at = 0; at < rate; at += frame_size) {
    frame->format = c->sample_fmt;
    frame->sample_rate = rate;
    av_channel_layout_copy(&frame->ch_layout, &c->ch_layout);
    frame->nb_samples = int(std::min<std::int64_t>(frame_size, rate - at));
    EXPECT_EQ(av_frame_get_buffer(frame.get(), 0), 0);
    for (int i = 0; i < frame->nb_samples; ++i) {
      double v = 0.5 * std::sin(2 * M_PI * 440.0 * double(at + i) / rate);
      if (c->sample_fmt == AV_SAMPLE_FMT_S16P)
        reinterpret_cast<std::int16_t*>(frame->extended_data[0])[i] = std::int16_t(v * 32767);
      else
        reinterpret_cast<float*>(frame->extended_data[0])[i] = float(v);
    }
    frame->pts = at;
    EXPECT_EQ(avcodec_send_frame(c.get(), frame.get()), 0);
    av_frame_unref(frame.get());
    drain();
  }
  avcodec_send_frame(c.get(), nullptr);
  drain();
  return s;
}

Config passthrough_config(std::string audio = "auto") {
  Config c;
  c.threads = 2;
  c.profile = "passthrough";
  c.audio = std::move(audio);
  return c;
}

// Feeds 1 s of video (30 fps) and the audio interleaved by time, as a publisher sends them.
void publish(StreamInput& in, const media::TrackConfig& audio_track, const std::vector<media::MediaFrame>& audio) {
  in.on_track(video_track());
  in.on_track(audio_track);
  std::size_t a = 0;
  for (int i = 0; i < 30; ++i) {
    for (; a < audio.size() && audio[a].dts * 90000 <= std::int64_t(i) * 3000 * audio_track.timescale; ++a)
      in.on_frame(audio[a]);
    in.on_frame(video_frame(i));
  }
  for (; a < audio.size(); ++a) in.on_frame(audio[a]);
}

TEST(PassthroughAudio, Mp3BecomesAacLc48kStereoVideoUntouched) {
  Metrics m;
  Transcoder t(passthrough_config(), m);
  auto mp3 = encode_mp3();
  ASSERT_GT(mp3.frames.size(), 30u);
  auto seen = std::make_shared<Seen>();
  {
    auto in = t.open_stream("s", "", std::make_shared<Capture>(seen));
    publish(*in, mp3.track, mp3.frames);
  }
  ASSERT_TRUE(seen->wait_released()) << "the stream never let go of its sink";
  std::lock_guard lk(seen->mu);
  // The video: every frame, in order, bytes and times untouched; its track as published.
  ASSERT_EQ(seen->frames[1].size(), 30u);
  for (int i = 0; i < 30; ++i) {
    auto want = video_frame(i);
    auto& got = seen->frames[1][std::size_t(i)];
    EXPECT_EQ(got.dts, want.dts);
    EXPECT_EQ(got.keyframe, want.keyframe);
    ASSERT_EQ(got.data.size(), want.data.size());
    EXPECT_TRUE(std::equal(got.data.view().begin(), got.data.view().end(), want.data.view().begin()));
  }
  ASSERT_TRUE(seen->tracks[1].video);
  EXPECT_EQ(seen->tracks[1].video->codec_string, "avc1.64001e");
  EXPECT_EQ(seen->tracks[1].video->width, 640u);
  // The audio: AAC-LC 48 kHz stereo, announced before its first frame, video's track first.
  auto& a = seen->tracks[2];
  EXPECT_EQ(a.codec, media::Codec::aac);
  EXPECT_EQ(a.timescale, 48000u);
  ASSERT_TRUE(a.audio);
  EXPECT_EQ(a.audio->sample_rate, 48000u);
  EXPECT_EQ(a.audio->channels, 2u);
  auto at = [&](const std::string& s) {
    return std::find(seen->order.begin(), seen->order.end(), s) - seen->order.begin();
  };
  EXPECT_LT(at("track:1"), at("track:2"));
  EXPECT_LT(at("track:2"), at("frame:2"));
  // Every decoded source sample (the MP3 packets carry 1152 each, the encoder's delay included)
  // comes out, the last AAC frame short; no gaps, no overlaps; from the source's first time.
  auto& out = seen->frames[2];
  const double want = double(mp3.frames.size()) * 1152 * 48000 / 44100 / 1024;
  EXPECT_NEAR(double(out.size()), want, 1.5) << want;
  for (auto& f : out) EXPECT_EQ(f.codec, media::Codec::aac);
  for (std::size_t i = 1; i < out.size(); ++i) EXPECT_EQ(out[i].pts - out[i - 1].pts, 1024) << i;
  ASSERT_FALSE(out.empty());
  EXPECT_NEAR(double(out.front().pts), double(mp3.frames.front().pts) * 48000 / 44100, 1024);
  // Audio is interleaved with the video on the source timeline, not bunched at the end.
  EXPECT_LT(at("frame:2"), at("frame:1") + 10);
}

TEST(PassthroughAudio, AacGoesThroughUntouchedOnTheCallersThread) {
  Metrics m;
  Transcoder t(passthrough_config(), m);
  media::TrackConfig audio;
  audio.track_id = 2;
  audio.type = media::MediaType::audio;
  audio.codec = media::Codec::aac;
  audio.timescale = 44100;
  audio.version = 1;
  const std::byte asc[2] = {std::byte{0x12}, std::byte{0x10}};  // AAC-LC 44.1 kHz stereo
  audio.record = Bytes::copy_of(ByteView(asc, 2));
  audio.audio = *media::parse_audio_specific_config(audio.record.view());
  std::vector<media::MediaFrame> frames;
  const std::byte payload[4] = {std::byte{0x21}, std::byte{0x10}, std::byte{0x04}, std::byte{0x60}};
  for (int i = 0; i < 43; ++i)
    frames.push_back({2, media::MediaType::audio, media::Codec::aac, i * 1024, i * 1024, true, 1,
                      Bytes::copy_of(ByteView(payload, 4))});
  auto seen = std::make_shared<Seen>();
  {
    auto in = t.open_stream("s", "", std::make_shared<Capture>(seen));
    publish(*in, audio, frames);
  }
  ASSERT_TRUE(seen->wait_released());
  std::lock_guard lk(seen->mu);
  EXPECT_EQ(seen->tracks[2].timescale, 44100u);
  EXPECT_EQ(seen->tracks[2].audio->sample_rate, 44100u);
  ASSERT_EQ(seen->frames[2].size(), frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(seen->frames[2][i].pts, frames[i].pts);
  EXPECT_EQ(seen->frames[1].size(), 30u);
  EXPECT_EQ(seen->threads, (std::set<std::thread::id>{std::this_thread::get_id()}));
}

TEST(PassthroughAudio, AacIsReencodedWhenAskedFor) {
  Metrics m;
  Transcoder t(passthrough_config("aac"), m);
  auto mp3 = encode_mp3(44100, "aac", media::Codec::aac);  // mono 44.1 kHz AAC in, stereo 48 kHz out
  ASSERT_FALSE(mp3.frames.empty());
  auto seen = std::make_shared<Seen>();
  {
    auto in = t.open_stream("s", "", std::make_shared<Capture>(seen));
    publish(*in, mp3.track, mp3.frames);
  }
  ASSERT_TRUE(seen->wait_released());
  std::lock_guard lk(seen->mu);
  EXPECT_EQ(seen->tracks[2].codec, media::Codec::aac);
  ASSERT_TRUE(seen->tracks[2].audio);
  EXPECT_EQ(seen->tracks[2].audio->sample_rate, 48000u);
  EXPECT_EQ(seen->tracks[2].audio->channels, 2u);
  EXPECT_GE(seen->frames[2].size(), 46u);
  EXPECT_EQ(seen->frames[1].size(), 30u);
}

TEST(PassthroughAudio, AudioQueueIsBoundedWhileTheWorkerIsStalled) {
  Metrics m;
  auto cfg = passthrough_config();
  cfg.max_queue_frames = 4;
  Transcoder t(cfg, m);
  auto mp3 = encode_mp3();
  ASSERT_GT(mp3.frames.size(), 10u);
  auto seen = std::make_shared<Seen>();
  seen->gate = true;
  {
    auto in = t.open_stream("s", "", std::make_shared<Capture>(seen));
    in->on_track(video_track());  // out at once, on this thread
    in->on_track(mp3.track);      // announced by the worker, which the sink then holds
    {
      std::unique_lock lk(seen->mu);
      ASSERT_TRUE(seen->cv.wait_for(lk, std::chrono::seconds(20), [&] { return seen->blocked; }));
    }
    for (auto& f : mp3.frames) in->on_frame(f);  // never blocks: 4 wait, the rest are skipped
    for (int i = 0; i < 30; ++i) in->on_frame(video_frame(i));
    auto stats = t.stats();
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_EQ(stats[0].profile, "passthrough");
    EXPECT_TRUE(stats[0].audio_transcoded);
    EXPECT_EQ(stats[0].queue_frames, 4);
    EXPECT_EQ(stats[0].skipped_frames, std::int64_t(mp3.frames.size()) - 4);
    {
      std::lock_guard lk(seen->mu);
      EXPECT_TRUE(seen->frames[1].empty());  // the video waits behind the audio, in order
      seen->gate = false;
      seen->cv.notify_all();
    }
  }
  ASSERT_TRUE(seen->wait_released());
  std::lock_guard lk(seen->mu);
  EXPECT_EQ(seen->frames[1].size(), 30u);
  // 4 MP3 frames (4 x 1152 samples at 44.1 kHz) make 5 or 6 AAC frames at 48 kHz.
  EXPECT_GE(seen->frames[2].size(), 4u);
  EXPECT_LE(seen->frames[2].size(), 7u);
}

}  // namespace
}  // namespace sf::transcode
