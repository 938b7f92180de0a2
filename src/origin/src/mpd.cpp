#include "render.h"

namespace sf::origin {

std::string render_mpd(const StreamView&, const Config&, int) { return {}; }

}  // namespace sf::origin
