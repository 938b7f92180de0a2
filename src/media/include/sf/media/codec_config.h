// Parsers for codec configuration records. Pure functions over borrowed bytes; never throw, never
// read outside their input; any thread.
#pragma once

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

}  // namespace sf::media
