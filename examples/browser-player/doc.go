// Package browserplayer holds only the test of the browser player example:
// index.html and player.js, a devicehooks signage player that runs in any
// modern browser and talks MQTT over WebSocket with the vendored mqtt.js
// (vendor/mqtt.min.js, MIT, see vendor/mqtt.LICENSE.md). See docs/players.md.
package browserplayer
