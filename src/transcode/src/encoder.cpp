#include "encoder.h"

extern "C" {
#include <libavutil/opt.h>
}

#include <fmt/format.h>

#include <cmath>

#include "sf/media/codec_config.h"

namespace sf::transcode {
namespace {

class LavcEncoder final : public VideoEncoder {
 public:
  Result<void> open(const EncoderParams& p, std::string* error) {
    const AVCodec* codec = avcodec_find_encoder_by_name(p.encoder.c_str());
    if (!codec || codec->type != AVMEDIA_TYPE_VIDEO) {
      if (error) *error = fmt::format("no video encoder '{}' in libavcodec", p.encoder);
      return std::unexpected(make_error_code(errc::invalid_argument));
    }
    ctx_.reset(avcodec_alloc_context3(codec));
    AVCodecContext* c = ctx_.get();
    c->width = static_cast<int>(p.width);
    c->height = static_cast<int>(p.height);
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = AVRational{1, static_cast<int>(media::kVideoTimescale)};
    double fps = p.fps > 0 ? p.fps : 30;
    c->framerate = av_d2q(fps, 1001000);
    c->bit_rate = p.rung.bitrate;
    c->rc_max_rate = p.rung.maxrate;
    c->rc_buffer_size = static_cast<int>(p.rung.bufsize > 0 ? p.rung.bufsize : p.rung.maxrate);
    c->max_b_frames = 0;                      // no reordering: each picture comes out as it goes in (LL-HLS parts)
    c->gop_size = 100000;                     // keyframes only where forced, on the segment grid
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;  // SPS/PPS in extradata -> avcC
    // One thread per encoder: the ladder's rungs run in parallel on the worker pool instead, with
    // no synchronisation inside an encoder.
    c->thread_count = 1;
    if (!p.rung.level.empty()) c->level = static_cast<int>(std::lround(std::stod(p.rung.level) * 10));
    if (p.encoder == "libx264") {
      av_opt_set(c->priv_data, "preset", p.rung.preset.empty() ? "veryfast" : p.rung.preset.c_str(), 0);
      av_opt_set(c->priv_data, "tune", "zerolatency", 0);
      if (!p.rung.profile.empty()) av_opt_set(c->priv_data, "profile", p.rung.profile.c_str(), 0);
      av_opt_set_int(c->priv_data, "forced-idr", 1, 0);
      // No scene-cut keyframes (they would differ between rungs), no lookahead, no B-frames.
      // force-cfr=0: tune zerolatency makes x264 assume every frame lasts 1/fps; rate control
      // must use the real timestamps (time_base 1/90000) so VBV holds for variable frame rates.
      av_opt_set(c->priv_data, "x264-params",
                 "scenecut=0:keyint=infinite:rc-lookahead=0:sync-lookahead=0:bframes=0:force-cfr=0", 0);
    } else if (!p.rung.profile.empty()) {
      av_opt_set(c->priv_data, "profile", p.rung.profile.c_str(), 0);
    }
    int rc = avcodec_open2(c, codec, nullptr);
    if (rc < 0) {
      if (error) *error = fmt::format("{} does not open at {}x{}: {}", p.encoder, p.width, p.height, av_error(rc));
      return std::unexpected(make_error_code(errc::invalid_argument));
    }
    auto avcc = make_avcc(ByteView(reinterpret_cast<const std::byte*>(c->extradata), std::size_t(c->extradata_size)));
    if (!avcc) {
      if (error) *error = fmt::format("{} gave no SPS/PPS in its global header", p.encoder);
      return std::unexpected(avcc.error());
    }
    auto vc = media::parse_avcc(avcc->view());
    if (!vc) {
      if (error) *error = "the encoder's avcC does not parse";
      return std::unexpected(vc.error());
    }
    track_.type = media::MediaType::video;
    track_.codec = media::Codec::h264;
    track_.timescale = media::kVideoTimescale;
    track_.record = *avcc;
    track_.video = *vc;
    if (track_.video->width == 0) {
      track_.video->width = p.width;
      track_.video->height = p.height;
    }
    track_.bandwidth = static_cast<std::uint64_t>(p.rung.maxrate);
    pkt_.reset(av_packet_alloc());
    frame_ = make_frame();
    return {};
  }

  const media::TrackConfig& track() const override { return track_; }

  Result<void> encode(const AVFrame* picture, std::int64_t pts, bool keyframe,
                      std::vector<EncodedFrame>& out) override {
    int rc;
    if (picture) {
      // A shell of our own around the shared picture: pts and the forced type are per rung.
      av_frame_unref(frame_.get());
      if ((rc = av_frame_ref(frame_.get(), picture)) < 0) return std::unexpected(make_error_code(errc::io_error));
      frame_->pts = pts;
      frame_->pict_type = keyframe ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
      frame_->key_frame = keyframe ? 1 : 0;
      rc = avcodec_send_frame(ctx_.get(), frame_.get());
      av_frame_unref(frame_.get());
    } else {
      rc = avcodec_send_frame(ctx_.get(), nullptr);
    }
    if (rc < 0 && rc != AVERROR_EOF) return std::unexpected(make_error_code(errc::io_error));
    while (true) {
      rc = avcodec_receive_packet(ctx_.get(), pkt_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) break;
      if (rc < 0) return std::unexpected(make_error_code(errc::io_error));
      EncodedFrame f;
      f.data =
          annexb_to_length_prefixed(ByteView(reinterpret_cast<const std::byte*>(pkt_->data), std::size_t(pkt_->size)));
      f.pts = pkt_->pts;
      f.dts = pkt_->dts == AV_NOPTS_VALUE ? pkt_->pts : pkt_->dts;
      f.keyframe = (pkt_->flags & AV_PKT_FLAG_KEY) != 0;
      av_packet_unref(pkt_.get());
      if (f.data.size() > 0) out.push_back(std::move(f));
    }
    return {};
  }

 private:
  CodecContextPtr ctx_;
  PacketPtr pkt_;
  FramePtr frame_;
  media::TrackConfig track_;
};

}  // namespace

std::unique_ptr<VideoEncoder> make_video_encoder(const EncoderParams& params, std::string* error) {
  auto e = std::make_unique<LavcEncoder>();
  if (!e->open(params, error)) return nullptr;
  return e;
}

bool have_encoder(const std::string& name) {
  const AVCodec* c = avcodec_find_encoder_by_name(name.c_str());
  return c && c->type == AVMEDIA_TYPE_VIDEO;
}

}  // namespace sf::transcode
