// Undo and redo as lists of steps, kept in localStorage so a reload loses
// nothing. A step is what one gesture did: for each room it touched, the
// tiles that changed ([index, before, after]) and the room's "models" record
// before and after (a completion sets it, a hand edit clears it). Steps are
// stored against the fingerprint of the opened file: a different file (or a
// changed one) never replays another's edits.

const PREFIX = "ceilgrid-editor/";
const MAX_STEPS = 500;

export class History {
  constructor(fingerprint) {
    this.key = PREFIX + fingerprint;
    this.done = [];
    this.undone = [];
    this.saveError = null;
  }

  /** Steps kept for this file, or empty lists when none (or unreadable). */
  load() {
    try {
      const kept = JSON.parse(localStorage.getItem(this.key) || "null");
      if (kept && Array.isArray(kept.done) && Array.isArray(kept.undone)) {
        this.done = kept.done;
        this.undone = kept.undone;
      }
    } catch {
      this.done = [];
      this.undone = [];
    }
    return this;
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify({ done: this.done, undone: this.undone }));
      this.saveError = null;
    } catch (error) {
      this.saveError = `edit history not kept in this browser: ${error.message}`;
    }
  }

  clear() {
    this.done = [];
    this.undone = [];
    localStorage.removeItem(this.key);
  }

  push(step) {
    this.done.push(step);
    if (this.done.length > MAX_STEPS) this.done.shift();
    this.undone = [];
    this.save();
  }

  /** The step to reverse, moved to the redo list; null when there is none. */
  undo() {
    const step = this.done.pop();
    if (!step) return null;
    this.undone.push(step);
    this.save();
    return step;
  }

  redo() {
    const step = this.undone.pop();
    if (!step) return null;
    this.done.push(step);
    this.save();
    return step;
  }
}

/** Apply a step forward (``after`` values) or backward (``before``) to ``rooms``. */
export function applyStep(rooms, step, forward) {
  const touched = [];
  for (const edit of step.edits) {
    const room = rooms[edit.room];
    if (!room) continue;
    for (const [index, before, after] of edit.changes) {
      if (index >= 0 && index < room.codes.length) room.codes[index] = forward ? after : before;
    }
    room.models = forward ? edit.modelsAfter : edit.modelsBefore;
    touched.push(edit.room);
  }
  return touched;
}
