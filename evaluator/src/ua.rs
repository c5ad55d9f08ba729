//! `ua_based` fallback: browser and OS from the user's `userAgent`.

use crate::condition::Name;
use crate::user::User;
use crate::value::DynValue;

pub(crate) fn value_from_user_agent(_user: &User, _field: Option<&Name>) -> Option<DynValue> {
    None
}
