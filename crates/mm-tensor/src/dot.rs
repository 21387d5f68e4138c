//! Drawing a graph: micrograd's `draw_dot`, for tensors. [`Graph::to_dot`] writes the tape as
//! Graphviz DOT: one box per node with its op, its shape and, for small tensors, its value and
//! gradient; an arrow from each input to the node that uses it, in tape (topological) order.

use std::fmt::Write;

use crate::op::Op;
use crate::tape::{Graph, Values};
use crate::{Float, Grads};

/// Tensors of at most this many elements show their values.
const SHOWN: usize = 4;

impl<T: Float> Graph<'_, T> {
    /// The graph recorded so far as Graphviz DOT (`dot -Tsvg`): each node labelled with its op
    /// (a parameter or buffer with its name), its shape, and for tensors of at most 4 elements
    /// its value and, once a backward pass reached it, its gradient (a parameter's from `grads`).
    ///
    /// ```
    /// use mm_tensor::{Grads, ParamStore, Tape};
    /// let mut params = ParamStore::<f64>::new();
    /// let w = params.add("w", ndarray::arr0(-3.0).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let mut grads = Grads::new(&params);
    /// let g = tape.graph(&params);
    /// let o = (g.param(w) * 2.0).tanh();
    /// g.backward(o, &mut grads)?;
    /// let dot = g.to_dot(Some(&grads));
    /// assert!(dot.starts_with("digraph"));
    /// assert!(dot.contains("w | []") && dot.contains("Tanh") && dot.contains("n0 -> n2"));
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn to_dot(&self, grads: Option<&Grads<T>>) -> String {
        let n = self.nodes.borrow();
        let values = Values { ops: &n.ops, values: &n.values, params: self.params, ids: &n.ids };
        let mut out =
            String::from("digraph {\n  rankdir=LR;\n  node [shape=record, fontname=\"monospace\"];\n");
        for (i, op) in n.ops.iter().enumerate() {
            let name = match *op {
                Op::Param(p) => self.params.name(p).to_string(),
                Op::Buffer(b) => self.params.buffer_name(b).to_string(),
                Op::Input => "input".to_string(),
                other => {
                    let debug = format!("{other:?}");
                    debug.split(['(', ' ', '{']).next().unwrap_or_default().to_string()
                }
            };
            let shape = n.shapes[i];
            let mut label = format!("{} | {:?}", escape(&name), shape.dims());
            if shape.numel() <= SHOWN {
                let _ = write!(label, " | data {}", numbers(values.get(i as u32)));
                let grad = match *op {
                    Op::Param(p) => {
                        grads.filter(|g| g.live[p.index()]).map(|g| g.get(p).iter().copied().collect())
                    }
                    _ => n.grad_reached(i).then(|| n.grads[n.grad_slot(i)].clone()),
                };
                if let Some(grad) = grad {
                    let _ = write!(label, " | grad {}", numbers(&grad));
                }
            }
            let _ = writeln!(out, "  n{i} [label=\"{{ {label} }}\"];");
        }
        for (i, span) in n.input_spans.iter().enumerate() {
            for &input in &n.inputs[span.range()] {
                let _ = writeln!(out, "  n{input} -> n{i};");
            }
        }
        out.push_str("}\n");
        out
    }
}

/// A few numbers, to 4 decimals.
fn numbers<T: Float>(xs: &[T]) -> String {
    let shown: Vec<String> = xs.iter().map(|x| format!("{:.4}", x.as_f64())).collect();
    shown.join(" ")
}

/// `s` safe inside a DOT record label.
fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '{' | '}' | '|' | '<' | '>' | '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{ParamStore, Tape};

    /// A `concat` is drawn with an edge from each of its inputs, as every op is: its inputs are
    /// the node's input list (they were once kept apart, and the drawing had no edges into it).
    #[test]
    fn concat_and_linear_are_drawn_with_their_inputs() {
        let mut params = ParamStore::<f64>::new();
        let a = params.add("a", ndarray::arr1(&[1.0, 2.0]).into_dyn()).unwrap();
        let mut tape = Tape::new();
        let g = tape.graph(&params);
        let x = g.param(a);
        let joined = g.concat(&[x, x.tanh(), x], 0);
        let dot = g.to_dot(None);
        let id = joined.id;
        for edge in [format!("n0 -> n{id};"), format!("n1 -> n{id};")] {
            assert!(dot.contains(&edge), "no edge {edge} in\n{dot}");
        }
        assert_eq!(dot.matches(&format!("n0 -> n{id};")).count(), 2, "a repeated input is drawn twice");
        // A linear layer without a bias has two inputs, not its input listed twice.
        let w = g.input(&[2, 2], &[1.0, 0.0, 0.0, 1.0]);
        let y = x.reshape(&[1, 2]).linear_t(w, None);
        let dot = g.to_dot(None);
        assert_eq!(dot.matches(&format!("-> n{};", y.id)).count(), 2, "linear_t without a bias:\n{dot}");
    }
}
