// Small RAII owners for libav objects and the helpers that turn libavcodec's H.264 output (Annex B
// NAL units, SPS/PPS in extradata) into what the media model carries (length-prefixed NAL units
// and an avcC record). Private to the transcode component; any thread, one owner at a time.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"

namespace sf::transcode {

struct AvFrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct AvCodecContextFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct AvPacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
using FramePtr = std::shared_ptr<AVFrame>;  // shared between the scaler and the rungs that read it
using CodecContextPtr = std::unique_ptr<AVCodecContext, AvCodecContextFree>;
using PacketPtr = std::unique_ptr<AVPacket, AvPacketFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;

FramePtr make_frame();
std::string av_error(int err);

// Splits Annex B (start-code delimited) NAL units; returns views into `in`.
std::vector<ByteView> split_annexb(ByteView in);
bool is_annexb(ByteView in);
// Annex B access unit -> 4-byte length-prefixed NAL units (parameter sets and AUDs left out).
Bytes annexb_to_length_prefixed(ByteView in);
// SPS and PPS (Annex B, or already an avcC record) -> AVCDecoderConfigurationRecord with 4-byte
// lengths. Fails without an SPS and a PPS.
Result<Bytes> make_avcc(ByteView extradata);

}  // namespace sf::transcode
