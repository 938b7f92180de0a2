#include "audio.h"

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
}

#include <fmt/format.h>

#include <cstring>

#include "sf/media/codec_config.h"

namespace sf::transcode {
namespace {

AVCodecID audio_codec_id(media::Codec c) {
  switch (c) {
    case media::Codec::aac:
      return AV_CODEC_ID_AAC;
    case media::Codec::mp3:
      return AV_CODEC_ID_MP3;
    case media::Codec::opus:
      return AV_CODEC_ID_OPUS;  // configured by the ID header (channels, pre-skip, mapping)
    case media::Codec::ac3:
      return AV_CODEC_ID_AC3;
    case media::Codec::eac3:
      return AV_CODEC_ID_EAC3;
    case media::Codec::flac:
      return AV_CODEC_ID_FLAC;  // configured by the 34-byte STREAMINFO
    default:
      return AV_CODEC_ID_NONE;
  }
}

constexpr int kChannels = 2;

}  // namespace

std::unique_ptr<AudioTranscoder> AudioTranscoder::make(std::uint32_t track_id, std::int64_t bitrate,
                                                       std::string* error) {
  auto t = std::unique_ptr<AudioTranscoder>(new AudioTranscoder());
  const AVCodec* codec = avcodec_find_encoder_by_name("aac");
  if (!codec) {
    if (error) *error = "libavcodec has no 'aac' encoder";
    return nullptr;
  }
  CodecContextPtr c(avcodec_alloc_context3(codec));
  c->sample_fmt = AV_SAMPLE_FMT_FLTP;
  c->sample_rate = kAacRate;
  av_channel_layout_default(&c->ch_layout, kChannels);
  c->bit_rate = bitrate;
  c->profile = FF_PROFILE_AAC_LOW;
  c->time_base = AVRational{1, int(kAacRate)};
  c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;  // the AudioSpecificConfig in extradata
  c->thread_count = 1;
  if (int rc = avcodec_open2(c.get(), codec, nullptr); rc < 0) {
    if (error) *error = "aac encoder does not open: " + av_error(rc);
    return nullptr;
  }
  if (c->frame_size != int(kAacFrame) || c->extradata_size <= 0) {
    if (error) *error = "aac encoder: unexpected frame size or no AudioSpecificConfig";
    return nullptr;
  }
  Bytes asc =
      Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(c->extradata), std::size_t(c->extradata_size)));
  auto cfg = media::parse_audio_specific_config(asc.view());
  if (!cfg) {
    if (error) *error = "aac encoder: its AudioSpecificConfig does not parse";
    return nullptr;
  }
  t->track_.track_id = track_id;
  t->track_.type = media::MediaType::audio;
  t->track_.codec = media::Codec::aac;
  t->track_.timescale = kAacRate;
  t->track_.version = 1;
  t->track_.record = std::move(asc);
  t->track_.audio = *cfg;
  t->encoder_ = std::move(c);
  t->fifo_.reset(av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, kChannels, int(kAacFrame) * 4));
  t->packet_.reset(av_packet_alloc());
  t->decoded_ = make_frame();
  t->enc_frame_ = make_frame();
  t->enc_frame_->format = AV_SAMPLE_FMT_FLTP;
  t->enc_frame_->sample_rate = kAacRate;
  av_channel_layout_default(&t->enc_frame_->ch_layout, kChannels);
  t->enc_frame_->nb_samples = int(kAacFrame);
  if (!t->fifo_ || av_frame_get_buffer(t->enc_frame_.get(), 0) < 0) {
    if (error) *error = "out of memory";
    return nullptr;
  }
  return t;
}

bool AudioTranscoder::set_source(const media::TrackConfig& source, std::string* error) {
  decoder_.reset();
  AVCodecID id = audio_codec_id(source.codec);
  const AVCodec* codec = id == AV_CODEC_ID_NONE ? nullptr : avcodec_find_decoder(id);
  if (!codec) {
    if (error) *error = fmt::format("no decoder for {} audio", media::codec_name(source.codec));
    return false;
  }
  CodecContextPtr c(avcodec_alloc_context3(codec));
  auto rec = source.record.view();
  if (!rec.empty()) {
    c->extradata = static_cast<std::uint8_t*>(av_mallocz(rec.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    std::memcpy(c->extradata, rec.data(), rec.size());
    c->extradata_size = static_cast<int>(rec.size());
  }
  src_rate_ = source.timescale > 0 ? source.timescale : kAacRate;
  if (source.audio && source.audio->sample_rate > 0) c->sample_rate = int(source.audio->sample_rate);
  if (source.audio && source.audio->channels > 0) av_channel_layout_default(&c->ch_layout, source.audio->channels);
  c->pkt_timebase = AVRational{1, int(src_rate_)};
  c->thread_count = 1;
  if (int rc = avcodec_open2(c.get(), codec, nullptr); rc < 0) {
    if (error) *error = "audio decoder does not open: " + av_error(rc);
    return false;
  }
  decoder_ = std::move(c);
  expect_src_ = INT64_MIN;  // a new source timescale: the next frame's time is taken as it comes
  return true;
}

void AudioTranscoder::push(const media::MediaFrame& f, std::vector<media::MediaFrame>& out) {
  if (!decoder_ || f.data.size() == 0) return;
  if (f.epoch > epoch_in_) {
    epoch_in_ = f.epoch;
    epoch_src_ = f.pts;  // placed on the output timeline with its first decoded samples (resample)
  }
  av_packet_unref(packet_.get());
  if (av_new_packet(packet_.get(), static_cast<int>(f.data.size())) != 0) return;
  std::memcpy(packet_->data, f.data.data(), f.data.size());
  packet_->pts = f.pts;
  packet_->dts = f.dts;
  if (avcodec_send_packet(decoder_.get(), packet_.get()) < 0) {
    ++undecodable_;  // a corrupt frame: a gap, which the timeline closes by re-anchoring
    return;
  }
  while (avcodec_receive_frame(decoder_.get(), decoded_.get()) == 0) {
    resample(decoded_.get(), out);
    av_frame_unref(decoded_.get());
  }
}

void AudioTranscoder::resample(const AVFrame* in, std::vector<media::MediaFrame>& out) {
  if (in->nb_samples <= 0 || in->sample_rate <= 0) return;
  std::int64_t pts = in->best_effort_timestamp != AV_NOPTS_VALUE ? in->best_effort_timestamp : in->pts;
  if (pts == AV_NOPTS_VALUE) pts = expect_src_ != INT64_MIN ? expect_src_ : 0;
  // Where this frame sits on the output timeline, by its own timestamp.
  std::int64_t at = av_rescale(pts, kAacRate, src_rate_);
  std::int64_t buffered = av_audio_fifo_size(fifo_.get()) + (swr_ ? swr_get_delay(swr_.get(), kAacRate) : 0);
  if (next_out_ == INT64_MIN) {
    next_out_ = at;
    first_out_ = at;
  } else if (expect_src_ == INT64_MIN ||
             std::llabs(pts - expect_src_) > std::int64_t(src_rate_) / 10) {  // a jump of 100 ms or more
    std::int64_t anchored = at - buffered;
    // Never back in time: what is buffered keeps its place, the new samples follow it.
    if (anchored > next_out_) {
      if (expect_src_ != INT64_MIN) ++reanchored_;
      next_out_ = anchored;
    }
  }
  expect_src_ = pts + av_rescale(in->nb_samples, src_rate_, in->sample_rate);
  if (epoch_src_ && pts >= *epoch_src_) {
    // The new epoch's first samples follow what is buffered on the output timeline.
    epoch_rises_.emplace_back(next_out_ + buffered, epoch_in_);
    epoch_src_.reset();
  }

  int channels = in->ch_layout.nb_channels;
  if (!swr_ || swr_rate_ != in->sample_rate || swr_fmt_ != in->format || swr_channels_ != channels) {
    AVChannelLayout in_layout{};
    if (in->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || in->ch_layout.order == AV_CHANNEL_ORDER_CUSTOM)
      av_channel_layout_default(&in_layout, channels);
    else
      av_channel_layout_copy(&in_layout, &in->ch_layout);
    AVChannelLayout out_layout{};
    av_channel_layout_default(&out_layout, kChannels);
    SwrContext* s = nullptr;
    int rc = swr_alloc_set_opts2(&s, &out_layout, AV_SAMPLE_FMT_FLTP, int(kAacRate), &in_layout,
                                 static_cast<AVSampleFormat>(in->format), in->sample_rate, 0, nullptr);
    av_channel_layout_uninit(&in_layout);
    av_channel_layout_uninit(&out_layout);
    swr_.reset(s);
    if (rc < 0 || swr_init(s) < 0) {
      swr_.reset();
      ++undecodable_;
      return;
    }
    swr_rate_ = in->sample_rate;
    swr_fmt_ = in->format;
    swr_channels_ = channels;
  }
  int max_out = swr_get_out_samples(swr_.get(), in->nb_samples);
  if (max_out <= 0) return;
  planes_.resize(kChannels);
  std::uint8_t* dst[kChannels];
  for (int c = 0; c < kChannels; ++c) {
    if (planes_[c].size() < std::size_t(max_out)) planes_[c].resize(std::size_t(max_out));
    dst[c] = reinterpret_cast<std::uint8_t*>(planes_[c].data());
  }
  int src_planes = av_sample_fmt_is_planar(static_cast<AVSampleFormat>(in->format)) ? channels : 1;
  src_ptrs_.assign(in->extended_data, in->extended_data + src_planes);
  int n = swr_convert(swr_.get(), dst, max_out, src_ptrs_.data(), in->nb_samples);
  if (n <= 0) return;
  av_audio_fifo_write(fifo_.get(), reinterpret_cast<void**>(dst), n);
  while (av_audio_fifo_size(fifo_.get()) >= int(kAacFrame)) {
    if (av_frame_make_writable(enc_frame_.get()) < 0) return;
    enc_frame_->nb_samples = int(kAacFrame);
    av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(enc_frame_->data), int(kAacFrame));
    enc_frame_->pts = next_out_;
    next_out_ += kAacFrame;
    encode(enc_frame_.get(), out);
  }
}

void AudioTranscoder::encode(const AVFrame* frame, std::vector<media::MediaFrame>& out) {
  if (avcodec_send_frame(encoder_.get(), frame) < 0) return;
  while (avcodec_receive_packet(encoder_.get(), packet_.get()) == 0) {
    std::int64_t pts = packet_->pts;
    // The priming frame (before the first sample), and never time going backwards.
    if (pts != AV_NOPTS_VALUE && pts >= first_out_ && pts > last_out_ && packet_->size > 0) {
      media::MediaFrame m;
      m.track_id = track_.track_id;
      m.type = media::MediaType::audio;
      m.codec = media::Codec::aac;
      m.dts = m.pts = pts;
      m.keyframe = true;
      m.config_version = track_.version;
      while (!epoch_rises_.empty() && pts >= epoch_rises_.front().first) {
        epoch_out_ = epoch_rises_.front().second;
        epoch_rises_.pop_front();
      }
      m.epoch = epoch_out_;
      m.data = Bytes::copy_of(ByteView(reinterpret_cast<const std::byte*>(packet_->data), std::size_t(packet_->size)));
      out.push_back(std::move(m));
      last_out_ = pts;
    }
    av_packet_unref(packet_.get());
  }
}

void AudioTranscoder::flush(std::vector<media::MediaFrame>& out) {
  if (!encoder_) return;
  int left = av_audio_fifo_size(fifo_.get());
  if (left > 0 && av_frame_make_writable(enc_frame_.get()) >= 0) {
    enc_frame_->nb_samples = left;  // the native encoder takes a short last frame
    av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(enc_frame_->data), left);
    enc_frame_->pts = next_out_;
    next_out_ += left;
    encode(enc_frame_.get(), out);
    enc_frame_->nb_samples = int(kAacFrame);
  }
  encode(nullptr, out);
  encoder_.reset();
}

}  // namespace sf::transcode
