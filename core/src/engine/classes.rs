//! Which user classes run and how many users each gets: `--user-class`, a scenario's weights
//! and task, and the deterministic assignment of users to classes by weight.

use crate::plan::ClassChoice;
use crate::plugin::{PluginSet, UserClass, WaitTime};

/// One user class of the run, with the plugin it comes from.
#[derive(Debug, Clone)]
pub struct ClassSlot {
    /// Its plugin's index in the `PluginSet`.
    pub plugin_index: usize,
    /// Its index among that plugin's classes (what the guest is told to create).
    pub class_index: u32,
    /// What the plugin's `describe()` said of it.
    pub class: UserClass,
}

/// Why the chosen user classes cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassError {
    /// A class asked for that no loaded plugin offers.
    #[error("unknown user class `{name}` — the loaded plugins offer: {known}")]
    Unknown {
        /// As asked for.
        name: String,
        /// The classes on offer, comma-separated.
        known: String,
    },
    /// A weight given to a class that does not run.
    #[error("weights: unknown user class `{0}`")]
    UnknownWeight(String),
    /// Nothing would run.
    #[error("every selected user class has weight 0")]
    AllZero,
    /// `--task` names a task no selected class has.
    #[error("no selected user class has a task `{task}` — the tasks are: {known}")]
    UnknownTask {
        /// As asked for.
        task: String,
        /// The selected classes' tasks, comma-separated.
        known: String,
    },
    /// An arrival rate for a class that does not run.
    #[error("rates: unknown user class `{name}` — the classes are: {known}")]
    UnknownRate {
        /// As asked for.
        name: String,
        /// The classes that run, comma-separated.
        known: String,
    },
}

impl ClassError {
    /// The setting the error is about (`user-classes` or `weights`).
    pub fn field(&self) -> &'static str {
        match self {
            ClassError::UnknownWeight(_) => "weights",
            ClassError::UnknownRate { .. } => "rates",
            _ => "user-classes",
        }
    }
}

/// The weight of each class, by class index.
pub(super) fn weights(classes: &[ClassSlot]) -> Vec<u32> {
    classes.iter().map(|c| c.class.weight).collect()
}

/// Assigns `users` users to classes deterministically by weight (smooth weighted round-robin:
/// 10 users at 7/2/1 are exactly 7, 2 and 1, and any prefix is as close to the weights as it
/// can be).
pub fn assign_classes(weights: &[u32], users: usize) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(users);
    if total == 0 {
        return out;
    }
    for _ in 0..users {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .expect("at least one class");
        current[best] -= total;
        out.push(best);
    }
    out
}

/// The user classes of the plugin set, filtered by `--user-class`, with a scenario's weight
/// overrides applied (by class name).
pub fn select_classes(set: &PluginSet, choice: &ClassChoice) -> Result<Vec<ClassSlot>, ClassError> {
    let mut slots = filter_classes(set, &choice.only)?;
    for (name, weight) in &choice.weights {
        let mut found = false;
        for slot in slots
            .iter_mut()
            .filter(|s| s.class.name.eq_ignore_ascii_case(name))
        {
            slot.class.weight = *weight;
            found = true;
        }
        if !found {
            return Err(ClassError::UnknownWeight(name.clone()));
        }
    }
    if let Some(task) = &choice.task {
        let known: Vec<String> = slots
            .iter()
            .flat_map(|s| s.class.tasks.iter().map(|t| t.name.clone()))
            .collect();
        // Only that task runs: the others keep their index (tasks are passed by index) with
        // weight 0, and classes without it get no users.
        for slot in &mut slots {
            let has = slot.class.tasks.iter().any(|t| t.name == *task);
            for t in &mut slot.class.tasks {
                t.weight = u32::from(t.name == *task);
            }
            slot.class.sequential &= !has;
            if !has {
                slot.class.weight = 0;
            }
        }
        if slots.iter().all(|s| s.class.weight == 0) {
            return Err(ClassError::UnknownTask {
                task: task.clone(),
                known: known.join(", "),
            });
        }
    }
    if choice.no_wait {
        for slot in &mut slots {
            slot.class.wait = WaitTime::Constant { ms: 0 };
        }
    }
    if slots.iter().all(|s| s.class.weight == 0) {
        return Err(ClassError::AllZero);
    }
    Ok(slots)
}

/// The user classes of the plugin set, filtered by `--user-class`.
fn filter_classes(set: &PluginSet, only: &[String]) -> Result<Vec<ClassSlot>, ClassError> {
    let mut slots = Vec::new();
    for (plugin_index, plugin) in set.plugins.iter().enumerate() {
        for (class_index, class) in plugin.classes.iter().enumerate() {
            if only.is_empty() || only.iter().any(|n| n.eq_ignore_ascii_case(&class.name)) {
                slots.push(ClassSlot {
                    plugin_index,
                    class_index: class_index as u32,
                    class: class.clone(),
                });
            }
        }
    }
    for name in only {
        if !slots
            .iter()
            .any(|s| s.class.name.eq_ignore_ascii_case(name))
        {
            let known: Vec<&str> = set
                .plugins
                .iter()
                .flat_map(|p| p.classes.iter().map(|c| c.name.as_str()))
                .collect();
            return Err(ClassError::Unknown {
                name: name.clone(),
                known: known.join(", "),
            });
        }
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_assigned_exactly_by_weight() {
        let a = assign_classes(&[7, 2, 1], 10);
        assert_eq!(
            (0..3)
                .map(|c| a.iter().filter(|&&x| x == c).count())
                .collect::<Vec<_>>(),
            vec![7, 2, 1]
        );
        let a = assign_classes(&[7, 2, 1], 100);
        assert_eq!(
            (0..3)
                .map(|c| a.iter().filter(|&&x| x == c).count())
                .collect::<Vec<_>>(),
            vec![70, 20, 10]
        );
        let a = assign_classes(&[1, 1], 3);
        assert_eq!(a.len(), 3);
        assert!(assign_classes(&[0], 3).is_empty());
    }
}
