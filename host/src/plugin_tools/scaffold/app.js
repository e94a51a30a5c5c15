// jco's entry: the script's exports turned into the contract's `behaviour-sync`.
import * as script from "./{name}.js";
import { plugin } from "./perfhost.js";

export const behaviourSync = plugin(script);
