// SFT's loss: the summed next-token cross-entropy over the tokens that carry loss,
//
//   L_sum = Σ_{b,t : y[b,t+1] ≠ -100}  −log softmax(h[b,t] · Wᵀ)[y[b,t+1]]
//
// where h (B, T, C) are the final hidden states and W (V, C) the LM head. The loop divides the
// step's sum by the step's loss-token count (TRL's num_items_in_batch normalization), so any
// batch × accumulation split gives the same gradient. Also the number of positions whose argmax
// is the target (token accuracy). Not the batch assembly (sft.ts).
import { argmax, crossEntropy, noGrad, scope, type Tensor } from '../tensor/index.js';
import { shiftLabels, type CausalLM } from '../models/index.js';

/** One SFT micro-batch as model inputs: (B, T) ids and labels (-100 = no loss), and the batching's masks. */
export interface SftBatch {
  inputIds: Tensor;
  labels: Tensor;
  attentionMask: Tensor | null;
  docIds: Tensor | null;
  positionIds: Tensor | null;
}

/**
 * L_sum and the correct-prediction count of a batch. By default the LM head and the loss run
 * fused over row chunks (CausalLM.headLoss: the (B, T, V) logits never exist, the argmax comes
 * from each chunk); `materializeLogits` computes the full logits first, the reference the fused
 * path is tested against.
 */
export function sftLossSum(model: CausalLM, b: SftBatch, opts: { materializeLogits?: boolean } = {}): { loss: Tensor; correct: number } {
  const input = { inputIds: b.inputIds, attentionMask: b.attentionMask, docIds: b.docIds, positionIds: b.positionIds };
  const targets = shiftLabels(b.labels);
  let loss: Tensor, pred: ArrayLike<number>;
  if (opts.materializeLogits) {
    const { logits } = model.forward(input);
    loss = crossEntropy(logits, targets, { reduction: 'sum' });
    pred = noGrad(() => scope(() => argmax(logits, -1).toArray()));
  } else {
    const r = model.headLoss(model.hiddenStates(input), targets, { reduction: 'sum', returnArgmax: true });
    loss = r.loss;
    pred = r.argmax.toArray();
    r.argmax.dispose();
  }
  const want = targets.toArray();
  let correct = 0;
  for (let i = 0; i < want.length; i++) if (want[i] !== -100 && pred[i] === want[i]) correct++;
  return { loss, correct };
}
