from .mean_shift_loss import MeanShiftLoss

__all__ = ['MeanShiftLoss']
