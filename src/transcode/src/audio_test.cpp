#include "audio.h"

#include <gtest/gtest.h>

extern "C" {
#include <libavutil/channel_layout.h>
}

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace sf::transcode {
namespace {

// One second of a 440 Hz tone encoded by libavcodec, as a source track and its frames.
struct EncodedSource {
  media::TrackConfig track;
  std::vector<media::MediaFrame> frames;
  std::int64_t samples = 0;  // at the source rate
};

void fill_tone(AVFrame* f, std::int64_t first_sample, int rate) {
  const int channels = f->ch_layout.nb_channels;
  const auto fmt = static_cast<AVSampleFormat>(f->format);
  const bool planar = av_sample_fmt_is_planar(fmt);
  for (int i = 0; i < f->nb_samples; ++i) {
    const double v = 0.5 * std::sin(2 * M_PI * 440.0 * double(first_sample + i) / rate);
    for (int ch = 0; ch < channels; ++ch) {
      std::uint8_t* plane = f->extended_data[planar ? ch : 0];
      const int at = planar ? i : i * channels + ch;
      switch (av_get_packed_sample_fmt(fmt)) {
        case AV_SAMPLE_FMT_S16:
          reinterpret_cast<std::int16_t*>(plane)[at] = std::int16_t(v * 32767);
          break;
        case AV_SAMPLE_FMT_S32:
          reinterpret_cast<std::int32_t*>(plane)[at] = std::int32_t(v * 2147483647.0);
          break;
        case AV_SAMPLE_FMT_FLT:
          reinterpret_cast<float*>(plane)[at] = float(v);
          break;
        default:
          ADD_FAILURE() << "sample format " << f->format << " not filled";
          return;
      }
    }
  }
}

EncodedSource encode_tone(const char* encoder, media::Codec codec, int rate, int channels) {
  EncodedSource s;
  const AVCodec* enc = avcodec_find_encoder_by_name(encoder);
  EXPECT_TRUE(enc) << encoder;
  if (!enc) return s;
  CodecContextPtr c(avcodec_alloc_context3(enc));
  c->sample_fmt = enc->sample_fmts ? enc->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
  c->sample_rate = rate;
  av_channel_layout_default(&c->ch_layout, channels);
  c->bit_rate = channels > 2 ? 384000 : 128000;
  c->time_base = AVRational{1, rate};
  if (int rc = avcodec_open2(c.get(), enc, nullptr); rc < 0) {
    ADD_FAILURE() << encoder << " does not open: " << av_error(rc);
    return s;
  }
  s.track.track_id = 2;
  s.track.type = media::MediaType::audio;
  s.track.codec = codec;
  s.track.timescale = std::uint32_t(rate);
  s.track.version = 1;
  if (c->extradata_size > 0)  // Opus: the ID header; FLAC: the 34-byte STREAMINFO
    s.track.record =
        Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(c->extradata), std::size_t(c->extradata_size)));
  s.track.audio = media::AudioConfig{codec, 0, std::uint32_t(rate), std::uint8_t(channels), 1024, ""};
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
  const int frame_size = c->frame_size > 0 ? c->frame_size : 1024;
  for (std::int64_t at = 0; at < rate; at += frame_size) {
    frame->format = c->sample_fmt;
    frame->sample_rate = rate;
    av_channel_layout_copy(&frame->ch_layout, &c->ch_layout);
    frame->nb_samples = int(std::min<std::int64_t>(frame_size, rate - at));
    if (av_frame_get_buffer(frame.get(), 0) < 0) return s;
    fill_tone(frame.get(), at, rate);
    frame->pts = at;
    EXPECT_EQ(avcodec_send_frame(c.get(), frame.get()), 0);
    av_frame_unref(frame.get());
    drain();
  }
  avcodec_send_frame(c.get(), nullptr);
  drain();
  s.samples = rate;
  return s;
}

struct Case {
  const char* encoder;
  media::Codec codec;
  int rate;
  int channels;
};

class AudioTranscoderTest : public ::testing::TestWithParam<Case> {};

TEST_P(AudioTranscoderTest, DecodesOnceIntoAacLc48kStereoCoveringTheSource) {
  const Case& k = GetParam();
  auto src = encode_tone(k.encoder, k.codec, k.rate, k.channels);
  ASSERT_GT(src.frames.size(), 10u);
  std::string error;
  auto t = AudioTranscoder::make(2, 128000, &error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->track().codec, media::Codec::aac);
  EXPECT_EQ(t->track().timescale, 48000u);
  ASSERT_TRUE(t->track().audio);
  EXPECT_EQ(t->track().audio->object_type, 2);
  EXPECT_EQ(t->track().audio->channels, 2);
  ASSERT_TRUE(t->set_source(src.track, &error)) << error;
  std::vector<media::MediaFrame> out;
  for (auto& f : src.frames) t->push(f, out);
  t->flush(out);
  EXPECT_EQ(t->undecodable(), 0);
  EXPECT_EQ(t->reanchored(), 0);
  ASSERT_FALSE(out.empty());
  for (std::size_t i = 1; i < out.size(); ++i) EXPECT_EQ(out[i].pts - out[i - 1].pts, 1024) << i;
  // One second in, one second out (the last frame short, the codecs' delays within two frames).
  EXPECT_NEAR(double(out.size()), 48000.0 / 1024, 2.5);
  // Anchored at the first decoded sample: 0, give or take the source encoder's own delay
  // (libmp3lame's 1105 samples come out as 25 ms).
  EXPECT_LE(std::llabs(out.front().pts), 2048);
}

TEST_P(AudioTranscoderTest, EncodedFramesCarryTheSourcesEpochFromItsFirstSamples) {
  const Case& k = GetParam();
  auto src = encode_tone(k.encoder, k.codec, k.rate, k.channels);
  ASSERT_GT(src.frames.size(), 10u);
  // A discontinuity half way: the times go on (as ingest keeps them), the epoch rises.
  const std::int64_t rise_src = k.rate / 2;
  for (auto& f : src.frames) f.epoch = f.pts >= rise_src ? 1 : 0;
  std::string error;
  auto t = AudioTranscoder::make(2, 128000, &error);
  ASSERT_TRUE(t) << error;
  ASSERT_TRUE(t->set_source(src.track, &error)) << error;
  std::vector<media::MediaFrame> out;
  for (auto& f : src.frames) t->push(f, out);
  t->flush(out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.front().epoch, 0u);
  EXPECT_EQ(out.back().epoch, 1u);
  // One rise, where the output reaches the first sample of the new epoch (the source frame that
  // starts it, give or take the codecs' delays: two frames).
  const std::int64_t rise_out = 24000;
  int rises = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i > 0 && out[i].epoch != out[i - 1].epoch) {
      ++rises;
      EXPECT_EQ(out[i].epoch, out[i - 1].epoch + 1) << i;
    }
    if (out[i].pts + 1024 <= rise_out - 2048) EXPECT_EQ(out[i].epoch, 0u) << "pts " << out[i].pts;
    if (out[i].pts >= rise_out + 2048) EXPECT_EQ(out[i].epoch, 1u) << "pts " << out[i].pts;
  }
  EXPECT_EQ(rises, 1);
}

INSTANTIATE_TEST_SUITE_P(Codecs, AudioTranscoderTest,
                         ::testing::Values(Case{"libopus", media::Codec::opus, 48000, 2},
                                           Case{"ac3", media::Codec::ac3, 48000, 2},
                                           Case{"eac3", media::Codec::eac3, 48000, 6},
                                           Case{"flac", media::Codec::flac, 44100, 2},
                                           Case{"libmp3lame", media::Codec::mp3, 44100, 1}),
                         [](const auto& info) { return std::string(media::codec_name(info.param.codec)); });

TEST(AudioTranscoder, RefusesACodecWithoutDecoder) {
  std::string error;
  auto t = AudioTranscoder::make(2, 128000, &error);
  ASSERT_TRUE(t) << error;
  media::TrackConfig vp9;
  vp9.codec = media::Codec::vp9;
  vp9.timescale = 48000;
  EXPECT_FALSE(t->set_source(vp9, &error));
  EXPECT_EQ(error, "no decoder for vp9 audio");
}

}  // namespace
}  // namespace sf::transcode
