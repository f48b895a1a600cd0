//! Group a request's keys (or commands) by who serves them, call each group,
//! and put the answers back in request order: what the router does with a
//! multi-key operation over several routes, a memcached pool with keys on
//! several servers, and a Redis Cluster with commands for several nodes.
//! Written once here; each caller says what an owner is and how to call it.

/// `items` grouped by owner: owners in order of first appearance, each
/// group's items in their order. `same` says whether two owners are one
/// (an index compares with `==`, a shared node by pointer).
pub fn by_owner<O, T>(
    items: impl IntoIterator<Item = (O, T)>,
    same: impl Fn(&O, &O) -> bool,
) -> Vec<(O, Vec<T>)> {
    let mut groups: Vec<(O, Vec<T>)> = Vec::new();
    for (owner, item) in items {
        match groups.iter_mut().find(|(known, _)| same(known, &owner)) {
            Some((_, group)) => group.push(item),
            None => groups.push((owner, vec![item])),
        }
    }
    groups
}

/// The answers of each group (`positions` in the request, and the answers
/// for them in that order) as one list in request order; a position no
/// group answered keeps `R::default()`.
pub fn in_request_order<R: Default, A: IntoIterator<Item = R>>(
    len: usize,
    answers: impl IntoIterator<Item = (Vec<usize>, A)>,
) -> Vec<R> {
    let mut out: Vec<R> = std::iter::repeat_with(R::default).take(len).collect();
    for (positions, answers) in answers {
        for (position, answer) in positions.into_iter().zip(answers) {
            out[position] = answer;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_first_appearance_and_answers_come_back_in_order() {
        let keys = ["a1", "b1", "a2", "c1", "b2"];
        let owner = |key: &str| key.as_bytes()[0];
        let groups = by_owner(
            keys.iter().enumerate().map(|(i, k)| (owner(k), i)),
            |a, b| a == b,
        );
        assert_eq!(
            groups,
            [(b'a', vec![0, 2]), (b'b', vec![1, 4]), (b'c', vec![3])]
        );
        let answers = groups.into_iter().map(|(_, positions)| {
            let answers: Vec<String> = positions.iter().map(|&p| keys[p].to_uppercase()).collect();
            (positions, answers)
        });
        assert_eq!(
            in_request_order(keys.len(), answers),
            ["A1", "B1", "A2", "C1", "B2"]
        );
        let partial = in_request_order::<Option<u8>, _>(3, [(vec![1], vec![Some(7)])]);
        assert_eq!(partial, [None, Some(7), None]);
    }
}
