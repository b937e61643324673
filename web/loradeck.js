// LoRA Deck frontend extension. The active-adapters panel arrives in its own release;
// this module only registers the extension so ComfyUI loads the pack's web folder cleanly.
import { app } from "../../scripts/app.js";

app.registerExtension({ name: "loradeck.Core" });
