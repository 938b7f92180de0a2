// Parsers for codec configuration records. Pure functions over borrowed bytes; never throw, never
// read outside their input; any thread.
#pragma once

#include <cstddef>

#include "sf/core/bytes.h"
#include "sf/core/result.h"
#include "sf/media/frame.h"

namespace sf::media {

// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1); width/height from the first SPS.
Result<VideoConfig> parse_avcc(ByteView record);
// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1); width/height from the SPS array.
Result<VideoConfig> parse_hvcc(ByteView record);
// AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3); width/height from the sequence header OBU if present.
Result<VideoConfig> parse_av1c(ByteView record);
// AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
Result<AudioConfig> parse_audio_specific_config(ByteView asc);
// Opus identification header (RFC 7845 5.1), "OpusHead" first: channel count; Opus always decodes
// at 48 kHz, whatever input rate the header mentions.
Result<AudioConfig> parse_opus_head(ByteView head);
// Where a FLAC STREAMINFO (RFC 9639 8.2) sits in `record`: bare (34 bytes), behind its metadata
// block header, or behind the "fLaC" marker and that header. The 34 bytes are what libavcodec's
// decoder takes as its configuration.
struct FlacStreamInfo {
  AudioConfig config;
  std::size_t offset = 0;  // of the 34 bytes in `record`
};
Result<FlacStreamInfo> parse_flac_streaminfo(ByteView record);
constexpr std::size_t kFlacStreamInfoSize = 34;
// The header of an AC-3 sync frame (ATSC A/52 5.3.1, 5.4.1) or an E-AC-3 one (A/52 E.1.2.2): the
// bit stream id tells them apart (<= 10 AC-3, 11..16 E-AC-3). Rate, channels (LFE counted),
// samples per frame (AC-3 1536; E-AC-3 256 per audio block).
Result<AudioConfig> parse_ac3_frame_header(ByteView frame);

}  // namespace sf::media
