#include "sf/media/frame.h"

namespace sf::media {

std::string_view codec_name(Codec c) {
  switch (c) {
    case Codec::unknown:
      return "unknown";
    case Codec::h264:
      return "h264";
    case Codec::hevc:
      return "hevc";
    case Codec::av1:
      return "av1";
    case Codec::vp9:
      return "vp9";
    case Codec::aac:
      return "aac";
    case Codec::mp3:
      return "mp3";
    case Codec::opus:
      return "opus";
    case Codec::ac3:
      return "ac3";
    case Codec::eac3:
      return "eac3";
    case Codec::flac:
      return "flac";
  }
  return "unknown";
}

}  // namespace sf::media
