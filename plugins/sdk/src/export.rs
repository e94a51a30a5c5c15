//! The glue between [`User`] classes and the contract's `behaviour` export.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use crate::bindings::exports::perfhost::plugin::behaviour::GuestUser;
use crate::bindings::perfhost::plugin::host::UserContext;
use crate::bindings::perfhost::plugin::types::{TaskInfo, TaskOutcome, UserClass};
use crate::context::Context;
use crate::user::{TaskError, TaskFuture, User};

/// Turns user classes into the component's exports. List every [`User`] class of the plugin,
/// in the order their indices should have:
///
/// ```ignore
/// perfhost_sdk::export_behaviour!(Browser, Buyer);
/// ```
///
/// Use it once per plugin crate (a `cdylib`).
#[macro_export]
macro_rules! export_behaviour {
    ($($class:ty),+ $(,)?) => {
        const _: () = {
            struct __PerfhostPlugin;

            impl $crate::__private::Plugin for __PerfhostPlugin {
                const CLASSES: &'static [$crate::__private::Class] =
                    &[$($crate::__private::Class::of::<$class>()),+];
            }

            impl $crate::bindings::exports::perfhost::plugin::behaviour::Guest for __PerfhostPlugin {
                type User = $crate::__private::UserBox<__PerfhostPlugin>;

                fn describe() -> ::std::vec::Vec<$crate::bindings::perfhost::plugin::types::UserClass> {
                    $crate::__private::describe::<__PerfhostPlugin>()
                }
            }

            $crate::bindings::export!(__PerfhostPlugin with_types_in $crate::bindings);
        };
    };
}

/// Implementation details of [`export_behaviour!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// The classes one plugin exports, in index order.
    pub trait Plugin: 'static {
        /// One entry per class.
        const CLASSES: &'static [Class];
    }

    /// A type-erased user class.
    pub struct Class {
        describe: fn() -> UserClass,
        create: fn(&Context) -> Box<dyn ErasedUser>,
    }

    impl Class {
        /// The entry for class `U`.
        pub const fn of<U: User>() -> Self {
            Class {
                describe: describe_class::<U>,
                create: create::<U>,
            }
        }
    }

    /// `describe()` of the contract.
    pub fn describe<P: Plugin>() -> Vec<UserClass> {
        P::CLASSES.iter().map(|class| (class.describe)()).collect()
    }

    /// `User::NAME`, or the type's own name (`Visitor`) when it is left out.
    fn class_name<U: User>() -> String {
        if U::NAME.is_empty() {
            let path = std::any::type_name::<U>();
            path.rsplit("::").next().unwrap_or(path).to_string()
        } else {
            U::NAME.to_string()
        }
    }

    fn describe_class<U: User>() -> UserClass {
        UserClass {
            name: class_name::<U>(),
            weight: U::WEIGHT,
            wait: U::WAIT,
            tasks: U::TASKS
                .iter()
                .map(|task| TaskInfo {
                    name: task.name.to_string(),
                    weight: task.weight,
                })
                .collect(),
            sequential: U::SEQUENTIAL,
        }
    }

    fn create<U: User>(ctx: &Context) -> Box<dyn ErasedUser> {
        Box::new(U::new(ctx))
    }

    /// A [`User`] behind a vtable, so one resource type serves every class.
    pub trait ErasedUser {
        fn on_start<'a>(&'a self, ctx: &'a Context) -> TaskFuture<'a>;
        fn run_task<'a>(&'a self, ctx: &'a Context, task: u32) -> Option<TaskFuture<'a>>;
        fn next_task(&self, ctx: &Context) -> Option<u32>;
        fn next_wait_ms(&self, ctx: &Context) -> u32;
        fn on_stop<'a>(&'a self, ctx: &'a Context) -> Pin<Box<dyn Future<Output = ()> + 'a>>;
        fn describe_missing_task(&self, task: u32) -> String;
    }

    impl<U: User> ErasedUser for U {
        fn on_start<'a>(&'a self, ctx: &'a Context) -> TaskFuture<'a> {
            Box::pin(User::on_start(self, ctx))
        }

        fn run_task<'a>(&'a self, ctx: &'a Context, task: u32) -> Option<TaskFuture<'a>> {
            U::TASKS.get(task as usize).map(|t| (t.run)(self, ctx))
        }

        fn next_task(&self, ctx: &Context) -> Option<u32> {
            User::next_task(self, ctx)
        }

        fn next_wait_ms(&self, ctx: &Context) -> u32 {
            User::next_wait_ms(self, ctx)
        }

        fn on_stop<'a>(&'a self, ctx: &'a Context) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
            Box::pin(User::on_stop(self, ctx))
        }

        fn describe_missing_task(&self, task: u32) -> String {
            format!(
                "class {} has no task {task} (it has {})",
                class_name::<U>(),
                U::TASKS.len()
            )
        }
    }

    /// The contract's `user` resource: the context plus the author's user value.
    pub struct UserBox<P> {
        ctx: Context,
        user: Box<dyn ErasedUser>,
        plugin: PhantomData<fn() -> P>,
    }

    impl<P: Plugin> GuestUser for UserBox<P> {
        fn new(class: u32, id: u64, ctx: UserContext) -> Self {
            let ctx = Context::new(ctx, id, class);
            let Some(entry) = P::CLASSES.get(class as usize) else {
                // The host only passes indices from `describe()`; anything else is a host bug.
                panic!(
                    "perfhost: no user class {class} (this plugin has {})",
                    P::CLASSES.len()
                );
            };
            let user = (entry.create)(&ctx);
            UserBox {
                ctx,
                user,
                plugin: PhantomData,
            }
        }

        async fn on_start(&self) -> TaskOutcome {
            TaskError::into_outcome(self.user.on_start(&self.ctx).await)
        }

        async fn run_task(&self, task: u32) -> TaskOutcome {
            match self.user.run_task(&self.ctx, task) {
                Some(run) => TaskError::into_outcome(run.await),
                None => TaskOutcome::Error(self.user.describe_missing_task(task)),
            }
        }

        fn next_task(&self) -> Option<u32> {
            self.user.next_task(&self.ctx)
        }

        fn next_wait_ms(&self) -> u32 {
            self.user.next_wait_ms(&self.ctx)
        }

        async fn on_stop(&self) {
            self.user.on_stop(&self.ctx).await
        }
    }
}
